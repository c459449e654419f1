"""TLS on every endpoint of the lab: 1.2 or newer only, no weak cipher suites (the probe checked
against a local server that allows them, so a refusal comes from the platform's servers)."""

import re
import socket
import ssl
import subprocess
import threading

import pytest
from tlsprobe import (
    handshake,
    probing_context,
    server_alert,
    tls12_suites,
)

pytestmark = pytest.mark.lab

WEAK = re.compile(r"NULL|ADH|AECDH|anon|RC4|DES|EXP|MD5|PSK|SRP|-SHA$|^(AES|CAMELLIA|ARIA|SEED)")
"""Suites a server must not accept: no encryption or no authentication, broken ciphers or
MACs, SHA-1 MACs, static RSA key exchange (no forward secrecy), pre-shared keys."""


# --- protocol versions ---------------------------------------------------------------------


def test_probe_speaks_what_the_servers_must_refuse(tmp_path):
    """Control: this client does offer TLS 1.0 and weak suites, so a refusal below comes from
    the server. A local server that allows them accepts them from the same client."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-days", "1", "-subj", "/CN=probe.test", "-keyout", key, "-out", cert),
        ],
        check=True,
        capture_output=True,
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server_context.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    server_context.minimum_version = ssl.TLSVersion.TLSv1
    accepted = []
    for version, ciphers in (
        (ssl.TLSVersion.TLSv1, None),
        (ssl.TLSVersion.TLSv1_1, None),
        (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-NULL-SHA"),
        (ssl.TLSVersion.TLSv1_2, "AECDH-AES128-SHA"),
        (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA"),
    ):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            client = socket.create_connection(("127.0.0.1", port))
            server_side, _ = listener.accept()
            thread = threading.Thread(
                target=lambda s=server_side: server_context.wrap_socket(s, server_side=True)
            )
            thread.start()
            with probing_context(version, ciphers).wrap_socket(client) as sock:
                accepted.append((sock.version(), sock.cipher()[0]))
            thread.join()
            server_side.close()
    assert [v for v, _ in accepted] == ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.2", "TLSv1.2"]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=str)
def test_tls_before_1_2_is_refused_everywhere(endpoints, platform, version, names):
    for role, endpoint in endpoints:
        with pytest.raises(ssl.SSLError) as refused:
            handshake(endpoint, probing_context(version), names[role][0]).close()
        assert server_alert(refused.value), f"{endpoint}: {refused.value}"


def test_tls_1_2_and_1_3_are_accepted_everywhere(endpoints, platform, names):
    for role, endpoint in endpoints:
        for version, name in (
            (ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
            (ssl.TLSVersion.TLSv1_3, "TLSv1.3"),
        ):
            with handshake(endpoint, probing_context(version), names[role][0]) as sock:
                assert sock.version() == name, endpoint


# --- cipher suites -------------------------------------------------------------------------


def test_no_endpoint_accepts_a_weak_cipher_suite(endpoints, platform, names):
    suites = tls12_suites()
    weak = [suite for suite in suites if WEAK.search(suite)]
    # What this client can offer covers each kind of weakness its OpenSSL still has.
    for kind in ("NULL", "AECDH", "ECDHE-ECDSA-AES128-SHA", "AES128-GCM-SHA256"):
        assert any(suite.startswith(kind) or suite == kind for suite in weak), kind
    for role, endpoint in endpoints:
        accepted = []
        for suite in suites:
            try:
                with handshake(
                    endpoint,
                    probing_context(ssl.TLSVersion.TLSv1_2, suite),
                    names[role][0],
                ):
                    accepted.append(suite)
            except ssl.SSLError as refused:
                assert server_alert(refused), f"{endpoint} {suite}: {refused}"
        assert accepted, f"{endpoint} accepts no TLS 1.2 suite at all"
        assert not [s for s in accepted if WEAK.search(s)], f"{endpoint} accepts {accepted}"
        assert all(s.startswith("ECDHE-") for s in accepted), f"{endpoint} accepts {accepted}"


def test_servers_openssl_cannot_negotiate_rc4_3des_or_export(platform, nodes):
    """Suites this client's OpenSSL no longer has: the servers' cannot offer them either."""
    for node in nodes["mx"] + nodes["mailstore"]:
        result = platform.lab.ssh(
            platform.lab.host(node), "openssl ciphers 'RC4:3DES:DES:EXPORT:@SECLEVEL=0'"
        )
        assert result.returncode != 0 and "no cipher match" in result.stderr, node
