"""Starting and stopping the servers that tests and benchmarks run, by PID, on loopback."""

import socket
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 20) -> None:
    """Wait until something accepts connections on 127.0.0.1:port (and `process` still runs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:g} s")


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it does not end in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_policyd(
    valkey_url: str, *flags: str, command: list[str] | None = None, **popen_options
) -> tuple[subprocess.Popen, int]:
    """The policy service (`command`, by default `mailstack policyd`) on a free loopback port,
    listening when this returns."""
    port = free_port()
    process = subprocess.Popen(
        [
            *(command or [sys.executable, "-m", "mailstack.cli", "policyd"]),
            "--listen",
            f"127.0.0.1:{port}",
            "--valkey",
            valkey_url,
            *flags,
        ],
        **popen_options,
    )
    try:
        wait_for_port(port, process)
    except RuntimeError:
        stop(process)
        raise
    return process, port
