"""One Debian 13 tree with the platform's services, for tests that run them on this machine.

The machine runs Debian 12; the platform runs Debian 13's packages (Postfix 3.10, Dovecot 2.4,
Valkey 8, rspamd 3.12, HAProxy 3.0, ...). `tree()` builds one minimal trixie root holding them
all with mmdebstrap, once, caches it as a tarball under /var/cache/mailstack (keyed by its
package list and the mirror) and unpacks it next to it. Tests run the services' own programs
chrooted into it: the checkers on rendered templates, Valkey, Dovecot's auth against the test
PostgreSQL. A test that writes into the tree takes a copy-on-write `overlay()` of it.
"""

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mailstack.debian import debian_mirror

CACHE_DIR = Path("/var/cache/mailstack")
SUITE = "trixie"
PACKAGES = (
    # Run by the suite: the shared store, and the venv the policy service installs into.
    "valkey-server",
    "python3-venv",
    # Checkers of the rendered templates (tests/unit/test_templates.py).
    "postfix",
    "postfix-pgsql",
    "postfix-pcre",
    "dovecot-core",
    "dovecot-imapd",
    "dovecot-pop3d",
    "dovecot-lmtpd",
    "dovecot-pgsql",
    "dovecot-sieve",
    "dovecot-managesieved",
    "rspamd",
    "haproxy",
    "nginx",
    "nsd",
    "unbound",
    "dns-root-data",
    "clamav-daemon",
    "postgresql-17",
    "nftables",
    # The database and Valkey clusters' checkers.
    "patroni",
    "etcd-server",
    "etcd-client",
    "valkey-sentinel",
    # promtool and amtool check the monitoring configuration and run the rules' unit tests;
    # each exporter parses the arguments its role gives it.
    "prometheus",
    "prometheus-alertmanager",
    "prometheus-node-exporter",
    "prometheus-postfix-exporter",
    "prometheus-postgres-exporter",
    "prometheus-redis-exporter",
    # The failover clusters' checkers: crm_verify, corosync -t, the quorum device's.
    "pacemaker-cli-utils",
    "corosync",
    "corosync-qnetd",
    "openssl",
    # Webmail's PHP-FPM pool and Roundcube's configuration (PHP's own parser).
    "php8.4-fpm",
    "php8.4-cli",
)


def _key() -> str:
    recipe = f"mmdebstrap minbase {SUITE} {debian_mirror()} {' '.join(sorted(PACKAGES))}"
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def tree() -> Path:
    """The unpacked trixie root (read it, do not write it); built and cached on first use."""
    key = _key()
    tarball = CACHE_DIR / f"trixie-services-{key}.tar"
    root = CACHE_DIR / f"trixie-services-{key}"
    if (root / ".complete").exists():
        return root
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Several test runs may start at once; one builds, the others wait for it.
    with open(CACHE_DIR / f".trixie-services-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / ".complete").exists():
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
                timeout=1800,
            )
            partial.rename(tarball)
        unpacking = root.with_name(root.name + ".partial")
        shutil.rmtree(unpacking, ignore_errors=True)
        unpacking.mkdir()
        subprocess.run(["tar", "-xf", str(tarball), "-C", str(unpacking)], check=True)
        (unpacking / ".complete").touch()
        unpacking.rename(root)
    return root


@contextlib.contextmanager
def overlay(prefix: str = "mailstack-trixie-") -> Iterator[Path]:
    """A writable copy-on-write view of the tree, gone afterwards."""
    base = tree()
    work = Path(tempfile.mkdtemp(prefix=prefix))
    upper, scratch, merged = work / "upper", work / "work", work / "root"
    for directory in (upper, scratch, merged):
        directory.mkdir()
    subprocess.run(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={base},upperdir={upper},workdir={scratch}",
            str(merged),
        ],
        check=True,
    )
    try:
        yield merged
    finally:
        subprocess.run(["umount", str(merged)], check=False)
        shutil.rmtree(work, ignore_errors=True)


def chroot(root: Path, *command: str, stdin: str | None = None, timeout: float = 120):
    """Run a command inside a tree; its CompletedProcess (text)."""
    return subprocess.run(
        ["chroot", str(root), *command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
