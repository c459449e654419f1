"""The policy service installs and runs on Debian 13's Python the way the role installs it:
a venv filled from the wheelhouse prepared on the deploying machine, no package index."""

import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from mailstack.policyd.install import build_wheelhouse
from mailstack.testing.policy_client import request_bytes
from mailstack.testing.processes import start_policyd

pytestmark = pytest.mark.valkey

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheelhouse_installs_and_serves_on_debian_13(valkey):
    wheelhouse = build_wheelhouse(ROOT)
    inside = Path("/tmp") / f"policyd-install-{valkey.port}"
    target = valkey.root / str(inside).lstrip("/")
    shutil.rmtree(target, ignore_errors=True)
    (target / "wheels").mkdir(parents=True)
    for wheel in [*wheelhouse.dependency_wheels(), wheelhouse.mailstack_wheel]:
        shutil.copy(wheel, target / "wheels")
    shutil.copy(wheelhouse.requirements, target / "wheels" / "requirements.txt")

    def chroot(*command: str) -> None:
        subprocess.run(["chroot", str(valkey.root), *command], check=True, timeout=300)

    try:
        chroot("python3", "-m", "venv", f"{inside}/venv")
        pip = f"{inside}/venv/bin/pip"
        wheels = f"{inside}/wheels"
        chroot(
            pip,
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            wheels,
            "--require-hashes",
            "--requirement",
            f"{wheels}/requirements.txt",
        )
        chroot(
            pip,
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            f"{wheels}/{wheelhouse.mailstack_wheel.name}",
        )
        service, port = start_policyd(
            valkey.url,
            command=["chroot", str(valkey.root), f"{inside}/venv/bin/mailstack"],
            stderr=subprocess.PIPE,
            text=True,
        )
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
