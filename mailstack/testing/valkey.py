"""A real Valkey server for tests and benchmarks, run from the Debian 13 tree.

Debian 12 (the machine the suite runs on) has no Valkey package; Debian 13 has valkey-server 8,
the version the platform runs. `ValkeyServer` runs `valkey-server` chrooted into the shared
trixie tree (mailstack.testing.trixie) on a loopback port (a chroot shares the machine's
network, so the server is reachable on 127.0.0.1).
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from mailstack.testing import trixie
from mailstack.testing.processes import free_port


class ValkeyServer:
    """One valkey-server process on 127.0.0.1, started and stopped by its PID."""

    def __init__(
        self,
        port: int | None = None,
        name: str | None = None,
        password: str = "",
        extra_args: tuple[str, ...] = (),
    ):
        self.extra_args = extra_args
        self.root = trixie.tree()
        self.port = port or free_port()
        self.password = password
        # Data and log live inside the chroot; nothing is persisted between runs.
        self.workdir = Path("/tmp") / (name or f"valkey-{self.port}-{os.getpid()}")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        credentials = f":{self.password}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> "ValkeyServer":
        inside = self.root / str(self.workdir).lstrip("/")
        inside.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "chroot",
                str(self.root),
                "/usr/bin/valkey-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--logfile",
                "valkey.log",
                *(["--requirepass", self.password] if self.password else []),
                *self.extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                log = self.log_tail()
                raise RuntimeError(f"valkey-server exited at start: {error}\n{log}")
            if self.ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"valkey-server did not answer on port {self.port} within {timeout}s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                # Without the password Valkey still answers, with NOAUTH: it is up.
                return conn.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def log_tail(self, lines: int = 20) -> str:
        log = self.root / str(self.workdir).lstrip("/") / "valkey.log"
        with contextlib.suppress(OSError):
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crash would."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def freeze(self) -> None:
        """Stop the server (SIGSTOP): connections stay open but nothing answers."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.root / str(self.workdir).lstrip("/"), ignore_errors=True)

    def __enter__(self) -> "ValkeyServer":
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


class SentinelServer(ValkeyServer):
    """One Valkey Sentinel on 127.0.0.1 watching primaries given as (name, port, password)."""

    def __init__(self, primaries, password: str = "", down_after_ms: int = 1000):
        super().__init__(password=password)
        self.primaries = primaries
        self.down_after_ms = down_after_ms

    def start(self, timeout: float = 20.0) -> "SentinelServer":
        inside = self.root / str(self.workdir).lstrip("/")
        inside.mkdir(parents=True, exist_ok=True)
        lines = [f"port {self.port}", "bind 127.0.0.1", f"dir {self.workdir}"]
        if self.password:
            lines.append(f"requirepass {self.password}")
        for name, port, password in self.primaries:
            lines += [
                f"sentinel monitor {name} 127.0.0.1 {port} 1",
                f"sentinel auth-pass {name} {password}",
                f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
                f"sentinel failover-timeout {name} {max(2000, 2 * self.down_after_ms)}",
            ]
        (inside / "sentinel.conf").write_text("\n".join(lines) + "\n")
        self.extra_args = ("--sentinel",)
        self.process = subprocess.Popen(
            [
                "chroot", str(self.root), "/usr/bin/valkey-server",
                f"{self.workdir}/sentinel.conf", "--sentinel", "--daemonize", "no",
                "--logfile", f"{self.workdir}/valkey.log",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sentinel exited at start:\n{self.log_tail()}")
            if self.ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sentinel did not answer on port {self.port} within {timeout}s")
