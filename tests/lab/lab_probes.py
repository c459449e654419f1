"""Small probes the lab tests share: reachability as seen from the machine or from a host."""

import shlex
import socket
import subprocess

from mailstack.lab.lab import Lab, LabHost


def machine_reaches(host: LabHost, port: int = 22, timeout: float = 2.0) -> bool:
    try:
        socket.create_connection((str(host.address), port), timeout=timeout).close()
        return True
    except OSError:
        return False


def host_reaches(lab: Lab, source: str, target: str, port: int = 22, attempts: int = 1) -> int:
    """How many of `attempts` TCP connections from host `source` to `target` succeed."""
    address = lab.host(target).address
    script = (
        "import socket\n"
        "ok = 0\n"
        f"for _ in range({attempts}):\n"
        "    try:\n"
        f"        socket.create_connection(('{address}', {port}), timeout=0.5).close(); ok += 1\n"
        "    except OSError:\n"
        "        pass\n"
        "print(ok)\n"
    )
    result = lab.ssh(lab.host(source), f"python3 -c {shlex.quote(script)}", timeout=60)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


def host_reaches_within(lab: Lab, source: str, target: str, seconds: float, port: int = 22) -> bool:
    """Whether host `source` connects to `target` before `seconds` pass, trying again and again.

    After a fault is lifted, the source's neighbour entry for the target may have failed during the
    fault, and the first connection then waits for address resolution: a single short attempt would
    report the link as still cut on a busy machine.
    """
    address = lab.host(target).address
    script = (
        "import socket, time\n"
        f"deadline = time.monotonic() + {seconds}\n"
        "while True:\n"
        "    try:\n"
        f"        socket.create_connection(('{address}', {port}), timeout=1).close(); print(1); break\n"
        "    except OSError:\n"
        "        if time.monotonic() > deadline: print(0); break\n"
        "        time.sleep(0.2)\n"
    )
    result = lab.ssh(lab.host(source), f"python3 -c {shlex.quote(script)}", timeout=seconds + 60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip() == "1"


def ssh_answers(lab: Lab, host: str, timeout: float = 4) -> bool:
    try:
        return lab.ssh(lab.host(host), "true", timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


HAPROXY_STATUS = """
import socket
s = socket.socket(socket.AF_UNIX)
s.connect("/run/haproxy/admin.sock")
s.sendall(b"show stat\\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
for line in data.decode().splitlines()[1:]:
    fields = line.split(",")
    if len(fields) > 17 and fields[1] not in ("FRONTEND", "BACKEND"):
        print(fields[0], fields[1], fields[17])
"""


def balancer_status(lab: Lab) -> dict[tuple[str, str], str]:
    """HAProxy's view on the load-balancer host: (listener, server) -> UP / DOWN / ..."""
    result = lab.ssh(lab.host("lb1"), f"python3 -c {shlex.quote(HAPROXY_STATUS)}")
    assert result.returncode == 0, result.stderr
    rows = (line.split(maxsplit=2) for line in result.stdout.splitlines())
    return {(listener, server): status for listener, server, status in rows}
