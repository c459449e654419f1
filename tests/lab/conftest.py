"""Fixtures of the certificate tests (tests/lab/test_certificates.py, test_tls_protocols.py):
the deployed test lab, each role's public names and nodes, Pebble's current root and the TLS
endpoints clients reach."""

import pytest
from certificate_lab import (
    ROLES,
    deploy_to,
    published_root,
    tls_endpoints,
    verify_chain,
)

from mailstack.services import certificates as tls
from mailstack.testing.platform import Platform


@pytest.fixture(scope="module")
def platform(lab) -> Platform:
    return Platform(lab)


@pytest.fixture(scope="module")
def names(platform) -> dict[str, list[str]]:
    """The public names each role's nodes order certificates for."""
    return {role: tls.acme_names(platform.settings, (role,)) for role in ROLES}


@pytest.fixture(scope="module")
def nodes(platform) -> dict[str, list[str]]:
    """Each role's nodes by private address (what the tests connect to)."""
    return {role: platform.addresses(role) for role in ROLES}


@pytest.fixture(scope="module")
def pebble_root(platform, nodes) -> str:
    """The root Pebble issues under, from its management API.

    Pebble keeps its CA and accounts in memory: after a restart of the lab's internet host the
    nodes' certificates chain to a root it no longer has. A deploy of such nodes forgets their
    certificate and certbot's account and orders anew (roles/acme.py)."""
    root = published_root(platform)
    live = f"/etc/letsencrypt/live/{tls.ACME_CERT_NAME}/fullchain.pem"
    stale = [
        node
        for role in ROLES
        for node in nodes[role]
        if verify_chain(platform.sh(node, f"cat {live}"), root).returncode != 0
    ]
    if stale:
        redeployed = deploy_to(platform, *stale)
        assert redeployed.returncode == 0, redeployed.output[-5000:]
    return root


@pytest.fixture(scope="module")
def endpoints(platform):
    return tls_endpoints(platform)
