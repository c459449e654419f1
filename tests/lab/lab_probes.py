"""Small probes the lab tests share: reachability as seen from the machine (SSH, which every
host's firewall lets the machine reach) or from a host (ICMP echo)."""

import shlex
import socket
import subprocess

from mailstack.lab.hosts import LabHost
from mailstack.lab.lab import Lab


def machine_reaches(host: LabHost, port: int = 22, timeout: float = 2.0) -> bool:
    try:
        socket.create_connection((str(host.address), port), timeout=timeout).close()
        return True
    except OSError:
        return False


# Echo requests from a lab host, as root on a raw socket (hosts have no ping): each of `attempts`
# waits `timeout` seconds for its reply; until `seconds` have passed, asks again and again.
# Prints how many were answered. ICMP, because every host's firewall lets it in whatever
# services the host runs: the probes see the network, not the firewall.
ECHO = r"""
import os, select, socket, struct, sys, time
address, attempts, timeout, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])

def checksum(data):
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF

probe = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident, payload = os.getpid() & 0xFFFF, b"mailstack-probe."

def echo(sequence):
    header = struct.pack("!BBHHH", 8, 0, 0, ident, sequence)
    checked = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, sequence)
    try:
        probe.sendto(checked + payload, (address, 0))
    except OSError:
        time.sleep(timeout)
        return False
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([probe], [], [], left)[0]:
            return False
        data, (sender, _) = probe.recvfrom(2048)
        start = (data[0] & 0x0F) * 4
        kind, _, _, answer_ident, answer_sequence = struct.unpack("!BBHHH", data[start : start + 8])
        if (sender, kind, answer_ident, answer_sequence) == (address, 0, ident, sequence & 0xFFFF):
            return True
    return False

answered, sequence, end = 0, 0, time.monotonic() + seconds
while True:
    for _ in range(attempts):
        answered += echo(sequence)
        sequence += 1
    if answered or time.monotonic() > end:
        break
print(answered)
"""


def _echo(lab: Lab, source: str, target: str, attempts: int, seconds: float) -> int:
    address = lab.host(target).address
    arguments = " ".join(shlex.quote(str(a)) for a in (ECHO, address, attempts, 0.5, seconds))
    result = lab.ssh(lab.host(source), f"python3 -c {arguments}", timeout=seconds + 60)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


def host_reaches(lab: Lab, source: str, target: str, attempts: int = 1) -> int:
    """How many of `attempts` echo requests from host `source` to `target` are answered."""
    return _echo(lab, source, target, attempts, seconds=0)


def host_reaches_within(lab: Lab, source: str, target: str, seconds: float) -> bool:
    """Whether host `source` gets an answer from `target` before `seconds` pass, asking again and
    again.

    After a fault is lifted, the source's neighbour entry for the target may have failed during the
    fault, and the first request then waits for address resolution: a single short attempt would
    report the link as still cut on a busy machine.
    """
    return _echo(lab, source, target, 1, seconds) > 0


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
