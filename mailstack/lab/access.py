"""SSH into lab hosts: the options every client of the lab uses (hosts get new keys on every
lab creation, so there is nothing to remember about them)."""

from pathlib import Path

SSH_OPTIONS = (
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "BatchMode=yes",
)


def ssh_command(key: Path, address, *command: str, timeout: int = 5) -> list[str]:
    """The argv that runs `command` as root on the host at `address`, logging in with `key`;
    `timeout` (seconds) bounds the connection, not the command."""
    return [
        "ssh",
        "-i",
        str(key),
        *SSH_OPTIONS,
        "-o",
        f"ConnectTimeout={timeout}",
        f"root@{address}",
        *command,
    ]
