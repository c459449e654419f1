"""A real Valkey server for tests and benchmarks, run from a small Debian 13 chroot.

Debian 12 (the machine the suite runs on) has no Valkey package; Debian 13 has valkey-server 8,
the version the platform runs. `valkey_root()` builds a minimal trixie root with mmdebstrap once,
keeps it as a tarball under /var/cache/mailstack (keyed by its package list) and unpacks it next
to the tarball; `ValkeyServer` runs `valkey-server` chrooted into it on a loopback port (a chroot
shares the machine's network, so the server is reachable on 127.0.0.1).
"""

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from mailstack.debian import debian_mirror
from mailstack.testing.processes import free_port

CACHE_DIR = Path("/var/cache/mailstack")
SUITE = "trixie"
# valkey-server is the store; python3-venv lets tests install the policy service the way hosts do.
PACKAGES = ("valkey-server", "python3-venv")


def _cache_key() -> str:
    recipe = f"mmdebstrap minbase {SUITE} {' '.join(sorted(PACKAGES))}"
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def valkey_root() -> Path:
    """The unpacked trixie root holding valkey-server; built and cached on first use."""
    key = _cache_key()
    tarball = CACHE_DIR / f"valkey-{SUITE}-{key}.tar"
    root = CACHE_DIR / f"valkey-{SUITE}-{key}"
    if (root / "usr/bin/valkey-server").exists():
        return root
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Several test runs may start at once; one builds, the others wait for it.
    with open(CACHE_DIR / f".valkey-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / "usr/bin/valkey-server").exists():
            return root
        if not tarball.exists():
            partial = tarball.with_suffix(".partial.tar")
            subprocess.run(
                [
                    "mmdebstrap",
                    "--quiet",
                    "--variant=minbase",
                    f"--include={','.join(PACKAGES)}",
                    SUITE,
                    str(partial),
                    f"deb {debian_mirror()} {SUITE} main",
                ],
                check=True,
            )
            partial.rename(tarball)
        unpacking = root.with_name(root.name + ".partial")
        shutil.rmtree(unpacking, ignore_errors=True)
        unpacking.mkdir()
        subprocess.run(["tar", "-xf", str(tarball), "-C", str(unpacking)], check=True)
        unpacking.rename(root)
    return root


class ValkeyServer:
    """One valkey-server process on 127.0.0.1, started and stopped by its PID."""

    def __init__(self, port: int | None = None, name: str | None = None, password: str = ""):
        self.root = valkey_root()
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
