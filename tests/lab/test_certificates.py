"""Certificates on every TLS endpoint of the lab: issued through ACME by the lab's Pebble,
TLS 1.2 or newer only, no weak cipher suites, renewed and reloaded without a restart, and http-01
answered by whichever node the balancer picks."""

import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tlsprobe import (
    Endpoint,
    handshake,
    probing_context,
    server_alert,
    tls12_suites,
    verifying_context,
)

from mailstack import tls
from mailstack.lab.cli import REPOSITORY
from mailstack.topology import balanced_services

pytestmark = pytest.mark.lab

# How TLS starts on each port the balancers forward (None: implicit TLS).
STARTTLS = {
    25: "smtp",
    465: None,
    587: "smtp",
    143: "imap",
    993: None,
    110: "pop3",
    995: None,
    4190: "sieve",
}
RENEW = f"certbot renew --force-renewal --no-random-sleep-on-renew --cert-name {tls.ACME_CERT_NAME}"
# A client address for PROXY headers sent straight to a node (TEST-NET-1).
CLIENT = "192.0.2.25"
WEAK = re.compile(r"NULL|ADH|AECDH|anon|RC4|DES|EXP|MD5|PSK|SRP|-SHA$|^(AES|CAMELLIA|ARIA|SEED)")
"""Suites a server must not accept: no encryption or no authentication, broken ciphers or
MACs, SHA-1 MACs, static RSA key exchange (no forward secrecy), pre-shared keys."""


class Platform:
    def __init__(self, lab):
        self.lab = lab
        inventory = lab.inventory()
        self.settings = inventory.settings()
        self.env = self.settings.environment
        self.balancer = {lb.purpose: str(lb.private_ip) for lb in inventory.load_balancers}
        self.nodes = {
            role: [str(h.private_ip) for h in inventory.with_role(role)]
            for role in ("mx", "mailstore", "web")
        }
        self.names = {
            role: tls.acme_names(self.settings, (role,)) for role in ("mx", "mailstore", "web")
        }
        self.state = lab.state()

    def host(self, address: str):
        return next(h for h in self.lab.hosts() if str(h.address) == address)

    def ssh(self, address: str, command: str) -> str:
        result = self.lab.ssh(self.host(address), command, timeout=120)
        assert result.returncode == 0, f"{command}: {result.stderr}"
        return result.stdout

    def endpoints(self) -> list[tuple[str, Endpoint]]:
        """(role, endpoint) for every TLS endpoint, as clients reach them: every port the SMTP
        and mail-access balancers forward (but the ACME challenges' port 80)."""
        return [
            (role, Endpoint(self.balancer[purpose], service.port, STARTTLS[service.port]))
            for purpose in ("smtp", "mailaccess")
            for role, services in [balanced_services(self.settings, purpose)]
            for service in services
            if service.port != 80
        ]


@pytest.fixture(scope="module")
def platform(lab) -> Platform:
    return Platform(lab)


def https_get(address: str, port: int, server_name: str, path: str, cafile: str) -> bytes:
    context = ssl.create_default_context(cafile=cafile)
    with (
        socket.create_connection((address, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as sock,
    ):
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {server_name}\r\n\r\n".encode())
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], head
    return body


def verify_chain(chain_pem: str, root_pem: str) -> subprocess.CompletedProcess:
    """openssl's verdict on a full chain (leaf first) against one root."""
    with tempfile.TemporaryDirectory() as directory:
        chain, root = Path(directory, "chain.pem"), Path(directory, "root.pem")
        chain.write_text(chain_pem)
        root.write_text(root_pem)
        return subprocess.run(
            ["openssl", "verify", "-CAfile", root, "-untrusted", chain, chain],
            capture_output=True,
            text=True,
        )


@pytest.fixture(scope="module")
def pebble_root(platform) -> str:
    """The root Pebble issues under, from its management API.

    Pebble keeps its CA and accounts in memory: after a restart of the lab's internet host the
    nodes' certificates no longer verify and their accounts are unknown (a CA in production
    keeps both). Such nodes forget certbot's state and are deployed again, which orders anew."""
    root = https_get(
        str(platform.state.internet_address),
        15000,
        f"acme.{platform.state.lab.services_domain}",
        "/roots/0",
        str(platform.lab.pki_dir / "ca.pem"),
    ).decode()
    live = f"/etc/letsencrypt/live/{tls.ACME_CERT_NAME}/fullchain.pem"
    server = urlsplit(platform.settings.tls.acme.directory_url)
    stale = [
        node
        for role in ("mx", "mailstore", "web")
        for node in platform.nodes[role]
        if verify_chain(platform.ssh(node, f"cat {live}"), root).returncode != 0
        and "Pebble" in platform.ssh(node, f"openssl x509 -in {live} -noout -issuer")
    ]
    for node in stale:
        platform.ssh(
            node,
            f"certbot delete --non-interactive --cert-name {tls.ACME_CERT_NAME}"
            f" && rm -r /etc/letsencrypt/accounts/{server.netloc}",
        )
    if stale:
        redeployed = deploy_to(platform, *stale)
        assert redeployed.returncode == 0, redeployed.stdout[-5000:]
    return root


def served_certificate(endpoint: Endpoint, server_name: str) -> dict:
    context = probing_context()
    with handshake(endpoint, context, server_name) as sock:
        der = sock.getpeercert(binary_form=True)
    return ssl.DER_cert_to_PEM_cert(der)


def serial_of(pem: str) -> str:
    result = subprocess.run(
        ["openssl", "x509", "-noout", "-serial"], input=pem, capture_output=True, text=True
    )
    return result.stdout.strip().removeprefix("serial=")


# --- issued by Pebble, for the public names ------------------------------------------------


def test_every_endpoint_serves_a_pebble_certificate_for_its_public_names(platform, pebble_root):
    context = verifying_context(pebble_root)
    checked = []
    for role, endpoint in platform.endpoints():
        for name in platform.names[role]:
            # Verification against Pebble's root alone, and the host name check.
            with handshake(endpoint, context, name) as sock:
                issuer = dict(part[0] for part in sock.getpeercert()["issuer"])
            assert issuer["commonName"].startswith("Pebble Intermediate CA"), endpoint
            checked.append(endpoint.port)
    assert set(checked) == {25, 465, 587, 143, 993, 110, 995, 4190}


@pytest.mark.parametrize("port", [25, 465, 587])
def test_each_mx_node_serves_its_own_acme_certificate(platform, pebble_root, port):
    context = verifying_context(pebble_root)
    serials = set()
    for node in platform.nodes["mx"]:
        endpoint = Endpoint(node, port, STARTTLS[port], proxy_from=CLIENT)
        with handshake(endpoint, context, platform.env.hostname("mx")) as sock:
            serials.add(sock.getpeercert()["serialNumber"])
    # Every node orders its own certificate (and key).
    assert len(serials) == len(platform.nodes["mx"])


def test_nodes_not_serving_hold_a_pebble_certificate_too(platform, pebble_root):
    """The passive mailstore node has Dovecot stopped; it must still be ready to take over."""
    for role in ("mailstore", "web"):
        for node in platform.nodes[role]:
            chain = platform.ssh(node, f"cat {tls.CERTIFICATE}")
            verify = verify_chain(chain, pebble_root)
            assert verify.returncode == 0, f"{node}: {verify.stdout}{verify.stderr}"
            names = subprocess.run(
                ["openssl", "x509", "-noout", "-ext", "subjectAltName"],
                input=chain,
                capture_output=True,
                text=True,
            ).stdout
            assert sorted(re.findall(r"DNS:([^,\s]+)", names)) == sorted(platform.names[role])
            mode = platform.ssh(node, f"stat -c %a {tls.PRIVATE_KEY}").strip()
            assert mode == "600", node


# --- protocol versions ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def endpoints(platform):
    return platform.endpoints()


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
def test_tls_before_1_2_is_refused_everywhere(endpoints, platform, version):
    for role, endpoint in endpoints:
        with pytest.raises(ssl.SSLError) as refused:
            handshake(endpoint, probing_context(version), platform.names[role][0]).close()
        assert server_alert(refused.value), f"{endpoint}: {refused.value}"


def test_tls_1_2_and_1_3_are_accepted_everywhere(endpoints, platform):
    for role, endpoint in endpoints:
        for version, name in (
            (ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
            (ssl.TLSVersion.TLSv1_3, "TLSv1.3"),
        ):
            with handshake(endpoint, probing_context(version), platform.names[role][0]) as sock:
                assert sock.version() == name, endpoint


# --- cipher suites -------------------------------------------------------------------------


def test_no_endpoint_accepts_a_weak_cipher_suite(endpoints, platform):
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
                    platform.names[role][0],
                ):
                    accepted.append(suite)
            except ssl.SSLError as refused:
                assert server_alert(refused), f"{endpoint} {suite}: {refused}"
        assert accepted, f"{endpoint} accepts no TLS 1.2 suite at all"
        assert not [s for s in accepted if WEAK.search(s)], f"{endpoint} accepts {accepted}"
        assert all(s.startswith("ECDHE-") for s in accepted), f"{endpoint} accepts {accepted}"


def test_servers_openssl_cannot_negotiate_rc4_3des_or_export(platform):
    """Suites this client's OpenSSL no longer has: the servers' cannot offer them either."""
    for node in platform.nodes["mx"] + platform.nodes["mailstore"]:
        result = platform.lab.ssh(
            platform.host(node), "openssl ciphers 'RC4:3DES:DES:EXPORT:@SECLEVEL=0'"
        )
        assert result.returncode != 0 and "no cipher match" in result.stderr, node


# --- http-01 through any node --------------------------------------------------------------


def http_get(address: str, path: str, host: str, proxy_from: str | None) -> tuple[int, bytes]:
    with socket.create_connection((address, 80), timeout=10) as sock:
        if proxy_from:
            sock.sendall(f"PROXY TCP4 {proxy_from} {address} 40000 80\r\n".encode())
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize("role", ["mx", "mailstore"])
def test_a_challenge_for_one_node_is_answered_by_another(platform, role):
    owner, other = platform.nodes[role][-1], platform.nodes[role][0]
    token = secrets.token_urlsafe(32)
    content = f"{token}.{secrets.token_urlsafe(16)}"
    path = f"/.well-known/acme-challenge/{token}"
    name = platform.names[role][0]
    platform.ssh(owner, f"printf %s {content} > {tls.ACME_WEBROOT}{path}")
    try:
        assert http_get(other, path, name, CLIENT) == (200, content.encode())
        assert http_get(owner, path, name, CLIENT) == (200, content.encode())
        # As Pebble's validation comes: through the balancer, to whichever node.
        balancer = platform.balancer["smtp" if role == "mx" else "mailaccess"]
        for _ in range(4):
            assert http_get(balancer, path, name, None) == (200, content.encode())
    finally:
        platform.ssh(owner, f"rm -f {tls.ACME_WEBROOT}{path}")
    # Gone everywhere: a miss on every node is a plain 404, not a loop between them.
    assert http_get(other, path, name, CLIENT)[0] == 404


def test_port_80_serves_nothing_but_challenges(platform):
    for node in platform.nodes["mx"] + platform.nodes["mailstore"]:
        assert http_get(node, "/", "mx.example", CLIENT)[0] == 404
        # The peer port serves only local tokens, for the other nodes.
        with socket.create_connection((node, tls.ACME_PEER_PORT), timeout=10) as sock:
            sock.sendall(b"GET /etc/passwd HTTP/1.0\r\n\r\n")
            assert sock.recv(100).split()[1] == b"404"
    for node in platform.nodes["web"]:
        status, _ = http_get(node, "/login", platform.env.hostname("panel"), CLIENT)
        assert status == 301


# --- renewal -------------------------------------------------------------------------------


def process_ids(platform, node: str, service: str) -> str:
    return platform.ssh(node, f"systemctl show -p MainPID --value {service}").strip()


def test_renewal_is_served_without_a_restart(platform):
    mx, mailstore = platform.nodes["mx"][0], platform.nodes["mailstore"][0]
    # Postfix's master runs under the postfix@- instance; Dovecot under its own unit.
    services = {mx: "postfix@-", mailstore: "dovecot"}
    endpoints = {
        mx: [Endpoint(mx, 465, None, CLIENT), Endpoint(mx, 25, "smtp", CLIENT)],
        mailstore: [
            Endpoint(platform.balancer["mailaccess"], 993, None),
            Endpoint(platform.balancer["mailaccess"], 143, "imap"),
        ],
    }
    names = {mx: platform.names["mx"][0], mailstore: platform.names["mailstore"][0]}
    before = {node: process_ids(platform, node, services[node]) for node in services}
    old = {
        node: serial_of(served_certificate(endpoints[node][0], names[node])) for node in services
    }
    for node in services:
        platform.ssh(node, RENEW)
    live = f"/etc/letsencrypt/live/{tls.ACME_CERT_NAME}/cert.pem"
    for node in services:
        new = platform.ssh(node, f"openssl x509 -in {live} -noout -serial").strip()
        new = new.removeprefix("serial=")
        assert new != old[node]
        for endpoint in endpoints[node]:
            # Postfix's idle servers finish with the old certificate; new ones read the new.
            deadline = time.monotonic() + 30
            while (served := serial_of(served_certificate(endpoint, names[node]))) != new:
                assert time.monotonic() < deadline, f"{endpoint} still serves {served}"
                time.sleep(1)
        assert process_ids(platform, node, services[node]) == before[node], "restarted"


# --- the deploy ----------------------------------------------------------------------------


def test_renewal_window_and_timer_follow_the_settings(platform):
    window = platform.settings.tls.acme.renew_days_before_expiry
    for node in platform.nodes["mx"] + platform.nodes["mailstore"] + platform.nodes["web"]:
        conf = platform.ssh(node, f"cat /etc/letsencrypt/renewal/{tls.ACME_CERT_NAME}.conf")
        assert f"\nrenew_before_expiry = {window} days\n" in f"\n{conf}"
        assert f"renew_hook = {tls.INSTALL_SCRIPT}" in conf
        assert platform.ssh(node, "systemctl is-enabled certbot.timer").strip() == "enabled"


def deploy_to(
    platform, *limits: str, inventory_file: Path = REPOSITORY / "inventory/lab.py"
) -> subprocess.CompletedProcess:
    """pyinfra's deploy of the lab, limited to these groups or hosts; its output in stdout."""
    return subprocess.run(
        [
            *(str(REPOSITORY / ".venv/bin/pyinfra"), "-y", str(inventory_file), "deploy.py"),
            *(argument for limit in limits for argument in ("--limit", limit)),
        ],
        cwd=REPOSITORY,
        env={**os.environ, "MAILSTACK_LAB": platform.lab.name},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_second_deploy_changes_nothing(platform):
    result = deploy_to(platform, "mx", "mailstore", "web")
    assert result.returncode == 0, result.stdout[-5000:]
    (total,) = [line for line in result.stdout.splitlines() if "Grand total" in line]
    success, error = total.split()[-3:-1]
    assert (success, error) == ("-", "-"), result.stdout[-5000:]


def test_a_failed_order_fails_its_host_loudly_and_leaves_the_services_running(
    platform, pebble_root
):
    node = platform.nodes["mx"][-1]
    name = platform.host(node).name
    endpoint = Endpoint(node, 465, None, CLIENT)
    served = serial_of(served_certificate(endpoint, platform.names["mx"][0]))
    # As if the host were new: certbot holds nothing, so the deploy must order.
    platform.ssh(node, f"certbot delete --non-interactive --cert-name {tls.ACME_CERT_NAME}")
    platform.lab.faults.partition(name, platform.state.lab.internet_host)
    try:
        failed = deploy_to(platform, node)
    finally:
        platform.lab.faults.heal(name, platform.state.lab.internet_host)
    assert failed.returncode != 0
    # certbot's own words, on the order's operation.
    assert "Order a certificate" in failed.stdout
    assert re.search(r"\] +An unexpected error occurred", failed.stdout), failed.stdout[-5000:]
    acme_server = urlsplit(platform.settings.tls.acme.directory_url)
    assert f"host='{acme_server.hostname}', port={acme_server.port}" in failed.stdout
    # Everything before the order is in place; the services keep the certificate they had.
    assert platform.ssh(node, "systemctl is-active postfix").strip() == "active"
    assert serial_of(served_certificate(endpoint, platform.names["mx"][0])) == served

    assert deploy_to(platform, node).returncode == 0
    context = verifying_context(pebble_root)
    with handshake(endpoint, context, platform.names["mx"][0]) as sock:
        renewed = sock.getpeercert()["serialNumber"]
    assert renewed.upper().lstrip("0") != served.upper().lstrip("0")


def inventory_with_tls(platform, directory: Path, tls_settings: dict) -> Path:
    """A pyinfra inventory of the lab whose hosts run with these `tls` settings."""
    settings = platform.settings.model_dump(mode="json")
    settings["tls"] = tls_settings
    (directory / "settings.json").write_text(json.dumps(settings))
    inventory = platform.lab.inventory().model_copy(
        update={"settings_file": str(directory / "settings.json")}
    )
    inventory.write(directory / "inventory.json")
    (directory / "inventory.py").write_text(
        "from mailstack.inventory import Inventory\n"
        f"globals().update(Inventory.read({str(directory / 'inventory.json')!r}).pyinfra_groups())\n"
    )
    return directory / "inventory.py"


def test_an_unsupported_challenge_stops_the_deploy_naming_the_setting(platform, tmp_path):
    acme = platform.settings.tls.acme.model_dump(mode="json")
    inventory_file = inventory_with_tls(
        platform, tmp_path, {"mode": "acme", "acme": {**acme, "challenge": "dns-01"}}
    )
    result = deploy_to(platform, platform.nodes["mx"][0], inventory_file=inventory_file)
    assert result.returncode != 0
    assert "tls.acme.challenge: dns-01 is not supported" in result.stdout, result.stdout[-3000:]
    assert "Starting operation" not in result.stdout


def test_a_provided_certificate_is_installed_and_acme_takes_over_again(
    platform, pebble_root, tmp_path
):
    """tls.mode 'provided' on one mx node (its own settings and inventory), then back."""
    node = platform.nodes["mx"][-1]
    names = platform.names["mx"]
    key, cert = tmp_path / "privkey.pem", tmp_path / "fullchain.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-days", "90", "-subj", f"/CN={names[0]}", "-keyout", key, "-out", cert),
            *("-addext", "subjectAltName=" + ",".join(f"DNS:{name}" for name in names)),
        ],
        check=True,
        capture_output=True,
    )
    inventory_file = inventory_with_tls(
        platform,
        tmp_path,
        {"mode": "provided", "provided": {"certificate_path": str(cert), "key_path": str(key)}},
    )
    endpoint = Endpoint(node, 465, None, CLIENT)

    provided = deploy_to(platform, node, inventory_file=inventory_file)
    assert provided.returncode == 0, provided.stdout[-5000:]
    assert "Install the provided certificate" in provided.stdout
    assert serial_of(served_certificate(endpoint, names[0])) == serial_of(cert.read_text())
    assert platform.ssh(node, f"stat -c %a {tls.PRIVATE_KEY}").strip() == "600"
    # certbot, still there from ACME, renews but must not replace the operator's certificate.
    platform.lab.ssh(platform.host(node), RENEW, timeout=120)
    assert serial_of(served_certificate(endpoint, names[0])) == serial_of(cert.read_text())

    # Back to ACME: certbot's certificate is still current, so it is installed, not ordered.
    back = deploy_to(platform, node)
    assert back.returncode == 0, back.stdout[-5000:]
    assert "Install the current certificate" in back.stdout
    assert "Order a certificate" not in back.stdout
    with handshake(endpoint, verifying_context(pebble_root), names[0]):
        pass
