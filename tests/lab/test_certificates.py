"""Certificates on every TLS endpoint of the lab: issued through ACME by the lab's Pebble,
renewed and reloaded without a restart, http-01 answered by whichever node the balancer picks,
and the deploy's orders: a failed one fails its host loudly, a provided certificate is installed
and ACME takes over again. Protocol versions and cipher suites: test_tls_protocols.py."""

import re
import secrets
import subprocess
import time
from urllib.parse import urlsplit

import pytest
from certificate_lab import (
    RENEW,
    ROLES,
    at_node,
    deploy_to,
    from_balancer,
    http_get,
    process_ids,
    published_root,
    serial_of,
    served_certificate,
    tls_endpoints,
    verify_chain,
)
from tlsprobe import (
    Endpoint,
    handshake,
    verifying_context,
)

from mailstack.services import certificates as tls
from mailstack.testing import proxied

pytestmark = pytest.mark.lab


# --- issued by Pebble, for the public names ------------------------------------------------


def test_every_endpoint_serves_a_pebble_certificate_for_its_public_names(
    platform, pebble_root, names
):
    context = verifying_context(pebble_root)
    checked = []
    for role, endpoint in tls_endpoints(platform):
        for name in names[role]:
            # Verification against Pebble's root alone, and the host name check.
            with handshake(endpoint, context, name) as sock:
                issuer = dict(part[0] for part in sock.getpeercert()["issuer"])
            assert issuer["commonName"].startswith("Pebble Intermediate CA"), endpoint
            checked.append(endpoint.port)
    assert set(checked) == {25, 465, 587, 143, 993, 110, 995, 4190}


@pytest.mark.parametrize("port", [25, 465, 587])
def test_each_mx_node_serves_its_own_acme_certificate(platform, pebble_root, port, nodes):
    context = verifying_context(pebble_root)
    serials = set()
    for node in nodes["mx"]:
        endpoint = at_node(platform, node, port)
        with handshake(endpoint, context, platform.settings.environment.hostname("mx")) as sock:
            serials.add(sock.getpeercert()["serialNumber"])
    # Every node orders its own certificate (and key).
    assert len(serials) == len(nodes["mx"])


def test_nodes_not_serving_hold_a_pebble_certificate_too(platform, pebble_root, nodes, names):
    """The passive mailstore node has Dovecot stopped; it must still be ready to take over."""
    for role in ("mailstore", "web"):
        for node in nodes[role]:
            chain = platform.sh(node, f"cat {tls.CERTIFICATE}")
            verify = verify_chain(chain, pebble_root)
            assert verify.returncode == 0, f"{node}: {verify.stdout}{verify.stderr}"
            subject_names = subprocess.run(
                ["openssl", "x509", "-noout", "-ext", "subjectAltName"],
                input=chain,
                capture_output=True,
                text=True,
            ).stdout
            assert sorted(re.findall(r"DNS:([^,\s]+)", subject_names)) == sorted(names[role])
            mode = platform.sh(node, f"stat -c %a {tls.PRIVATE_KEY}").strip()
            assert mode == "600", node


# --- http-01 through any node ---------------------------------------------------------------


@pytest.mark.parametrize("role", ["mx", "mailstore"])
def test_a_challenge_for_one_node_is_answered_by_another(platform, role, nodes, names):
    owner, other = nodes[role][-1], nodes[role][0]
    token = secrets.token_urlsafe(32)
    content = f"{token}.{secrets.token_urlsafe(16)}"
    path = f"/.well-known/acme-challenge/{token}"
    name = names[role][0]
    platform.sh(owner, f"printf %s {content} > {tls.ACME_WEBROOT}{path}")
    try:
        for node in (other, owner):
            assert http_get(node, path, name, from_balancer(platform, node)) == (
                200,
                content.encode(),
            )
        # As Pebble's validation comes: through the balancer, to whichever node.
        balancer = platform.balancer("smtp" if role == "mx" else "mailaccess")
        for _ in range(4):
            assert http_get(balancer, path, name, None) == (200, content.encode())
    finally:
        platform.sh(owner, f"rm -f {tls.ACME_WEBROOT}{path}")
    # Gone everywhere: a miss on every node is a plain 404, not a loop between them.
    assert http_get(other, path, name, from_balancer(platform, other))[0] == 404


def test_port_80_serves_nothing_but_challenges(platform, nodes):
    for role in ("mx", "mailstore"):
        for node in nodes[role]:
            assert http_get(node, "/", "mx.example", from_balancer(platform, node))[0] == 404
            # The peer port serves only local tokens, for the role's other nodes.
            peer = next(other for other in nodes[role] if other != node)
            with proxied.connect_from(
                platform.lab, peer, node, tls.ACME_PEER_PORT, None, 10
            ) as sock:
                sock.sendall(b"GET /etc/passwd HTTP/1.0\r\n\r\n")
                assert sock.recv(100).split()[1] == b"404"
    for node in nodes["web"]:
        panel = platform.settings.environment.hostname("panel")
        status, _ = http_get(node, "/login", panel, from_balancer(platform, node))
        assert status == 301


# --- renewal -------------------------------------------------------------------------------


def test_renewal_is_served_without_a_restart(platform, nodes, names):
    mx, mailstore = nodes["mx"][0], nodes["mailstore"][0]
    # Debian 13's postfix.service runs Postfix's master itself.
    services = {mx: "postfix", mailstore: "dovecot"}
    endpoints = {
        mx: [at_node(platform, mx, 465), at_node(platform, mx, 25)],
        mailstore: [
            Endpoint(platform.balancer("mailaccess"), 993, None),
            Endpoint(platform.balancer("mailaccess"), 143, "imap"),
        ],
    }
    served_names = {mx: names["mx"][0], mailstore: names["mailstore"][0]}
    before = {node: process_ids(platform, node, services[node]) for node in services}
    old = {
        node: serial_of(served_certificate(endpoints[node][0], served_names[node]))
        for node in services
    }
    for node in services:
        platform.sh(node, RENEW)
    live = f"/etc/letsencrypt/live/{tls.ACME_CERT_NAME}/cert.pem"
    for node in services:
        new = platform.sh(node, f"openssl x509 -in {live} -noout -serial").strip()
        new = new.removeprefix("serial=")
        assert new != old[node]
        for endpoint in endpoints[node]:
            # Postfix's idle servers finish with the old certificate; new ones read the new.
            deadline = time.monotonic() + 30
            while (served := serial_of(served_certificate(endpoint, served_names[node]))) != new:
                assert time.monotonic() < deadline, f"{endpoint} still serves {served}"
                time.sleep(1)
        assert process_ids(platform, node, services[node]) == before[node], "restarted"


# --- the deploy ----------------------------------------------------------------------------


def test_renewal_window_and_timer_follow_the_settings(platform, nodes):
    window = platform.settings.tls.acme.renew_days_before_expiry
    for node in nodes["mx"] + nodes["mailstore"] + nodes["web"]:
        conf = platform.sh(node, f"cat /etc/letsencrypt/renewal/{tls.ACME_CERT_NAME}.conf")
        assert f"\nrenew_before_expiry = {window} days\n" in f"\n{conf}"
        assert f"renew_hook = {tls.INSTALL_SCRIPT}" in conf
        assert platform.sh(node, "systemctl is-enabled certbot.timer").strip() == "enabled"


# --- the deploy's orders ----------------------------------------------------------------------


def test_a_failed_order_fails_its_host_loudly_and_leaves_the_services_running(
    platform, nodes, names, pebble_root
):
    node = nodes["mx"][-1]
    name = platform.lab.host(node).name
    endpoint = at_node(platform, node, 465)
    served = serial_of(served_certificate(endpoint, names["mx"][0]))
    # As if the host were new: certbot holds nothing, so the deploy must order.
    platform.sh(node, f"certbot delete --non-interactive --cert-name {tls.ACME_CERT_NAME}")
    platform.lab.faults.partition(name, platform.state.lab.internet_host)
    try:
        failed = deploy_to(platform, node)
    finally:
        platform.lab.faults.heal(name, platform.state.lab.internet_host)
    assert failed.returncode != 0
    # certbot's own words, on the order's operation.
    assert "Order a certificate" in failed.output
    assert re.search(r"\] +An unexpected error occurred", failed.output), failed.output[-5000:]
    acme_server = urlsplit(platform.settings.tls.acme.directory_url)
    assert f"host='{acme_server.hostname}', port={acme_server.port}" in failed.output
    # Everything before the order is in place; the services keep the certificate they had.
    assert platform.sh(node, "systemctl is-active postfix").strip() == "active"
    assert serial_of(served_certificate(endpoint, names["mx"][0])) == served

    assert deploy_to(platform, node).returncode == 0
    context = verifying_context(pebble_root)
    with handshake(endpoint, context, names["mx"][0]) as sock:
        renewed = sock.getpeercert()["serialNumber"]
    assert renewed.upper().lstrip("0") != served.upper().lstrip("0")


def test_an_unsupported_challenge_stops_the_deploy_naming_the_setting(platform, nodes, tmp_path):
    acme = platform.settings.tls.acme.model_dump(mode="json")
    inventory_file = platform.variant_inventory(
        tmp_path, {"tls": {"mode": "acme", "acme": {**acme, "challenge": "dns-01"}}}
    )
    result = deploy_to(platform, nodes["mx"][0], inventory_file=inventory_file)
    assert result.returncode != 0
    assert "tls.acme.challenge: dns-01 is not supported" in result.output, result.output[-3000:]
    assert "Starting operation" not in result.output


def test_a_provided_certificate_is_installed_and_acme_takes_over_again(
    platform, nodes, names, pebble_root, tmp_path
):
    """tls.mode 'provided' on one mx node (its own settings and inventory), then back."""
    node = nodes["mx"][-1]
    mx_names = names["mx"]
    key, cert = tmp_path / "privkey.pem", tmp_path / "fullchain.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-days", "90", "-subj", f"/CN={mx_names[0]}", "-keyout", key, "-out", cert),
            *("-addext", "subjectAltName=" + ",".join(f"DNS:{name}" for name in mx_names)),
        ],
        check=True,
        capture_output=True,
    )
    provided_tls = {
        "mode": "provided",
        "provided": {"certificate_path": str(cert), "key_path": str(key)},
    }
    inventory_file = platform.variant_inventory(tmp_path, {"tls": provided_tls})
    endpoint = at_node(platform, node, 465)

    provided = deploy_to(platform, node, inventory_file=inventory_file)
    assert provided.returncode == 0, provided.output[-5000:]
    assert "Install the provided certificate" in provided.output
    assert serial_of(served_certificate(endpoint, mx_names[0])) == serial_of(cert.read_text())
    assert platform.sh(node, f"stat -c %a {tls.PRIVATE_KEY}").strip() == "600"
    # certbot, still there from ACME, must not replace the operator's certificate. Its renewal
    # fails (with tls.mode 'provided' no balancer forwards port 80 to the node, and its firewall
    # refuses it and the ACME peer port), and its deploy hook, run as certbot runs it, refuses.
    platform.sh(node, RENEW, timeout=120, check=False)
    lineage = f"RENEWED_LINEAGE=/etc/letsencrypt/live/{tls.ACME_CERT_NAME}"
    hook = platform.lab.ssh(platform.lab.host(node), f"{lineage} {tls.INSTALL_SCRIPT}")
    assert hook.returncode != 0, hook.stdout
    assert serial_of(served_certificate(endpoint, mx_names[0])) == serial_of(cert.read_text())

    # Back to ACME: certbot's certificate is still current, so it is installed, not ordered.
    back = deploy_to(platform, node)
    assert back.returncode == 0, back.output[-5000:]
    assert "Install the current certificate" in back.output
    assert "Order a certificate" not in back.output
    with handshake(endpoint, verifying_context(pebble_root), mx_names[0]):
        pass


def test_after_pebble_restarts_the_deploy_orders_under_its_new_root(platform, nodes, names):
    """Pebble makes a new root at each start and forgets its accounts (as after the lab's
    internet host or the machine restarted): a deploy finds each node's certificate under the
    old root, forgets it and certbot's account, and orders anew; the next changes nothing.
    Last here: every node ends with a certificate under the new root."""
    old_root = published_root(platform)
    platform.sh(platform.internet, "systemctl restart pebble")
    deadline = time.monotonic() + 60
    while True:
        try:
            new_root = published_root(platform)
            break
        except OSError:
            assert time.monotonic() < deadline, "Pebble did not come back"
            time.sleep(1)
    assert new_root != old_root
    acme_nodes = [node for role in ROLES for node in nodes[role]]
    renewed = deploy_to(platform, *acme_nodes)
    assert renewed.returncode == 0, renewed.output[-5000:]
    assert "Forget the certificate and account of the ACME server's earlier root" in renewed.output
    mx = nodes["mx"][-1]
    with handshake(at_node(platform, mx, 465), verifying_context(new_root), names["mx"][0]):
        pass
    again = deploy_to(platform, mx)
    assert again.returncode == 0 and again.changed_operations == [], again.changed_operations
