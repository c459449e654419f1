"""What the certificate tests share (tests/lab/test_certificates.py, test_tls_protocols.py and
their fixtures in conftest.py): how TLS starts on each port, how a node is reached as its
balancer reaches it, and the TLS, HTTP and openssl helpers."""

import socket
import ssl
import subprocess
import tempfile
from pathlib import Path

from tlsprobe import (
    Endpoint,
    handshake,
    probing_context,
)

from mailstack.services import certificates as tls
from mailstack.topology import balanced_services

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
# A client address for PROXY headers sent straight to a node (TEST-NET-1), from the node's
# balancer: the nodes' firewalls let no one else speak to their balanced ports.
CLIENT = "192.0.2.25"
BALANCER_OF = {"mx": "smtp", "mailstore": "mailaccess", "web": "http"}


ROLES = ("mx", "mailstore", "web")


def from_balancer(platform, node: str):
    """Connections to a node (by private address) as its role's balancer makes them."""
    (role,) = next(h.roles for h in platform.inventory.hosts if str(h.private_ip) == node)
    return platform.from_balancer(BALANCER_OF[role])


def at_node(platform, node: str, port: int) -> Endpoint:
    """A node's endpoint as its balancer reaches it, handing over CLIENT."""
    return Endpoint(node, port, STARTTLS[port], CLIENT, from_balancer(platform, node))


def tls_endpoints(platform) -> list[tuple[str, Endpoint]]:
    """(role, endpoint) for every TLS endpoint, as clients reach them: every port the SMTP
    and mail-access balancers forward (but the ACME challenges' port 80)."""
    return [
        (role, Endpoint(platform.balancer(purpose), service.port, STARTTLS[service.port]))
        for purpose in ("smtp", "mailaccess")
        for role, services in [balanced_services(platform.settings, purpose)]
        for service in services
        if service.port != 80
    ]


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


def published_root(platform) -> str:
    """The root Pebble issues under now, from its management API (checked with the lab's CA)."""
    return https_get(
        str(platform.state.internet_address),
        15000,
        f"acme.{platform.state.lab.services_domain}",
        "/roots/0",
        str(platform.lab.pki_dir / "ca.pem"),
    ).decode()


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


def http_get(address: str, path: str, host: str, via=None) -> tuple[int, bytes]:
    """GET on port 80 of a balancer from this machine, or of a node from its balancer (`via`,
    from_balancer), which hands over CLIENT in a PROXY header."""
    connect = via or (lambda *target: socket.create_connection(target[:2], target[2]))
    with connect(address, 80, 10) as sock:
        if via:
            sock.sendall(f"PROXY TCP4 {CLIENT} {address} 40000 80\r\n".encode())
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def process_ids(platform, node: str, service: str) -> str:
    main_pid = platform.sh(node, f"systemctl show -p MainPID --value {service}").strip()
    assert main_pid != "0", f"{service} does not run on {node}"
    return main_pid


def deploy_to(platform, *nodes_: str, inventory_file: Path | None = None):
    """The deploy of these nodes (by address), its output captured."""
    return platform.deploy(
        *(platform.lab.host(node).name for node in nodes_), inventory_file=inventory_file
    )
