"""The policy service runs on Debian 13's Python the way roles/venv.py installs the platform's
code: a venv from requirements-host.lock, the sources copied beside it, PYTHONPATH to them."""

import hashlib
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mailstack.testing.policy_client import request_bytes
from mailstack.testing.processes import start_policyd

pytestmark = pytest.mark.valkey

REPOSITORY = Path(__file__).resolve().parents[2]
HOST_LOCK = REPOSITORY / "requirements-host.lock"
WHEELS = Path("/var/cache/mailstack/wheels")


def host_wheels() -> Path:
    """The host lock's wheels for Debian 13's Python, downloaded once (hosts fetch them
    themselves; the test's Debian 13 root has no network set up)."""
    digest = hashlib.sha256(HOST_LOCK.read_bytes()).hexdigest()[:16]
    directory = WHEELS / f"host-{digest}"
    if not (directory / ".complete").exists():
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--require-hashes",
             "--no-deps", "--only-binary=:all:", "--python-version=3.13",
             "--implementation=cp", "--platform=manylinux_2_28_x86_64",
             "--platform=manylinux_2_17_x86_64", "--platform=manylinux2014_x86_64",
             "--dest", str(directory), "--requirement", str(HOST_LOCK)],
            check=True, timeout=600,
        )  # fmt: skip
        (directory / ".complete").touch()
    return directory


def test_the_service_runs_from_the_host_venv_on_debian_13(valkey):
    wheels = host_wheels()
    inside = Path("/tmp") / f"policyd-install-{valkey.port}"
    target = valkey.root / str(inside).lstrip("/")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(wheels, target / "wheels")
    shutil.copy(HOST_LOCK, target / "requirements-host.lock")
    shutil.copytree(
        REPOSITORY / "mailstack", target / "src" / "mailstack",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )  # fmt: skip

    def chroot(*command: str) -> None:
        subprocess.run(["chroot", str(valkey.root), *command], check=True, timeout=300)

    try:
        chroot("python3", "-m", "venv", f"{inside}/venv")
        chroot(f"{inside}/venv/bin/pip", "install", "--quiet", "--no-index", "--find-links",
               f"{inside}/wheels", "--require-hashes", "--no-deps", "-r",
               f"{inside}/requirements-host.lock")  # fmt: skip
        service, port = start_policyd(
            valkey.url,
            command=["chroot", str(valkey.root), "env", f"PYTHONPATH={inside}/src",
                     f"{inside}/venv/bin/python", "-m", "mailstack.policyd"],
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            with socket.create_connection(("127.0.0.1", port)) as connection:
                connection.sendall(request_bytes(sender=f"installed-{port}@example.org"))
                assert connection.recv(4096).startswith(b"action=DEFER_IF_PERMIT 4.7.1")
        finally:
            service.send_signal(signal.SIGTERM)
            service.communicate(timeout=10)
        assert service.returncode == 0
    finally:
        shutil.rmtree(target, ignore_errors=True)
