"""The DKIM key contract with rspamd itself: rspamd (Debian's package) configured as the
contract in docs/accounts.md says (`use_redis` with the panel's two hashes) signs a customer
domain's mail as soon as the panel has created the domain, and stops when it is removed.

rspamd runs from a temporary local configuration (only its scanner worker, on a free loopback
port, the suite's Valkey as its Redis, DNS pointed at a closed port), started and stopped by
PID; `rspamc --user` submits a message as an authenticated user would.
"""

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from django.test import override_settings

from mailstack.testing.processes import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.valkey]

VALKEY_DB = 8
MESSAGE = (
    "From: Alice <alice@customer.example>\r\nTo: bob@peer.example\r\nSubject: signed?\r\n"
    "Date: Mon, 30 Nov 2026 03:00:00 +0000\r\nMessage-ID: <1@customer.example>\r\n\r\nHello\r\n"
)


def _config(root: Path, port: int, valkey_port: int) -> None:
    from accounts import dkimstore

    (root / "local.d").mkdir()
    (root / "override.d").mkdir()
    for name in ("db", "run", "log"):
        (root / name).mkdir()
    (root / "override.d/worker-normal.inc").write_text(
        f'bind_socket = "127.0.0.1:{port}";\ncount = 1;\n'
    )
    for worker in ("worker-proxy", "worker-controller", "worker-fuzzy"):
        (root / f"override.d/{worker}.inc").write_text("enabled = false;\n")
    (root / "override.d/logging.inc").write_text(
        f'type = "file"; filename = "{root}/log/rspamd.log"; level = "info";\n'
    )
    (root / "local.d/options.inc").write_text(
        'dns { nameserver = ["127.0.0.1:9"]; timeout = 0.2s; retransmits = 1; }\n'
    )
    (root / "local.d/redis.conf").write_text(
        f'servers = "127.0.0.1:{valkey_port}";\ndb = "{VALKEY_DB}";\n'
    )
    # What the contract asks of the rspamd role (docs/accounts.md).
    (root / "local.d/dkim_signing.conf").write_text(
        "use_redis = true;\n"
        f'key_prefix = "{dkimstore.KEYS_HASH}";\n'
        f'selector_prefix = "{dkimstore.SELECTORS_HASH}";\n'
        "try_fallback = true;\nsign_authenticated = true;\nallow_username_mismatch = true;\n"
    )


@pytest.fixture(scope="module")
def rspamd(valkey):
    if not shutil.which("rspamd"):
        pytest.fail("rspamd is missing (make host-packages installs it)")
    root = Path(tempfile.mkdtemp(prefix="panel-rspamd-"))
    port = free_port()
    _config(root, port, valkey.port)
    server = subprocess.Popen(
        ["rspamd", "-f", "-i", "-c", "/etc/rspamd/rspamd.conf", f"--var=LOCAL_CONFDIR={root}",
         f"--var=DBDIR={root}/db", f"--var=RUNDIR={root}/run", f"--var=LOGDIR={root}/log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root,
    )  # fmt: skip
    try:
        # Compiling its rules takes rspamd a while on a busy machine.
        deadline = time.monotonic() + 240
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                log = root / "log/rspamd.log"
                raise RuntimeError(
                    "rspamd did not start:\n" + (log.read_text()[-3000:] if log.exists() else "")
                )
            time.sleep(1)
        yield port
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(root, ignore_errors=True)


def signature(port: int) -> str | None:
    """The DKIM-Signature rspamd adds to alice@customer.example's message, if any."""
    result = subprocess.run(
        ["rspamc", "-h", f"127.0.0.1:{port}", "--user", "alice@customer.example",
         "--from", "alice@customer.example", "--mime"],
        input=MESSAGE.encode(), capture_output=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode().replace("\r\n", "\n")
    headers = text.split("\n\n", 1)[0].replace("\n\t", " ")
    found = [line for line in headers.splitlines() if line.startswith("DKIM-Signature:")]
    return found[0] if found else None


def test_rspamd_signs_a_new_domain_at_once_and_stops_when_it_is_removed(rspamd, valkey, manage):
    from accounts.lifecycle import DomainKey

    url = f"redis://127.0.0.1:{valkey.port}/{VALKEY_DB}"
    with override_settings(MAILPANEL_VALKEY_URL=url):
        assert signature(rspamd) is None
        manage("reseller", "add", "acme")
        manage("domain", "add", "customer.example", "--reseller", "acme")
        selector = DomainKey.objects.get().selector
        signed = signature(rspamd)
        assert signed is not None
        assert "d=customer.example;" in signed and f"s={selector};" in signed
        manage("domain", "remove", "customer.example")
        assert signature(rspamd) is None
