"""The lab's Hetzner Cloud API endpoint as a process: started by `lab up`, stopped by `lab down`.

One per lab, on the bridge's gateway address (where Hetzner's API is reached from in
production: off the private network), port `LabSettings.cloud_api_port`, plain HTTP: the
token crosses only the lab's bridge. The API itself is `mailstack.lab.cloudapi`.
"""

import contextlib
import os
import signal
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path

from mailstack.lab.system import Cgroup, start_listener
from mailstack.secrets import SecretStore

TOKEN_SECRET = "cloud_api_token"
"""Name of the API token in the lab's secrets (`.lab/<name>/secrets.json`)."""


def cgroup(lab: str) -> Cgroup:
    return Cgroup(lab, "cloud-api")


def pid_file(runtime: Path) -> Path:
    return runtime / "cloud-api.pid"


def log_file(runtime: Path) -> Path:
    return runtime / "cloud-api.log"


def endpoint(address: IPv4Address, port: int) -> str:
    """The URL clients take as their API endpoint (Hetzner's is https://api.hetzner.cloud/v1)."""
    return f"http://{address}:{port}/v1"


def token(state_dir: Path) -> str:
    """The lab's API token, generated into its secrets on first use."""
    return SecretStore(state_dir / "secrets.json").get(TOKEN_SECRET)


def write_env_file(path: Path, url: str, api_token: str) -> None:
    """The client configuration in the variables the hcloud tools read, readable by root only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(
            "# The lab's Hetzner Cloud API, written by `mailstack lab up`.\n"
            f"HCLOUD_ENDPOINT={url}\nHCLOUD_TOKEN={api_token}\n"
        )


def start(lab: str, stack_file: Path, address: IPv4Address, port: int, runtime: Path) -> None:
    """Start the lab's API unless it runs; return once it accepts connections."""
    group = cgroup(lab)
    if group.populated():
        return
    command = [
        sys.executable,
        "-m",
        "mailstack.lab.cloudapi",
        f"--lab={lab}",
        f"--stack-file={stack_file}",
        f"--listen={address}:{port}",
        f"--pid-file={pid_file(runtime)}",
    ]
    start_listener(command, group, log_file(runtime), address, port, "the lab's cloud API")


def stop(lab: str, runtime: Path) -> None:
    """Stop the API by its PID (it finishes the request at hand), then whatever is left."""
    path = pid_file(runtime)
    group = cgroup(lab)
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        pid = path.read_text().strip()
        # Only the process the lab started: a PID file may outlive its process.
        if pid in (group.v2 / "cgroup.procs").read_text().split():
            os.kill(int(pid), signal.SIGTERM)
            deadline = time.monotonic() + 5
            while group.populated() and time.monotonic() < deadline:
                time.sleep(0.05)
    group.kill()
    group.remove()
    path.unlink(missing_ok=True)
