"""ACME http-01 challenges (tls.mode 'acme'): nginx (mailstack.services.nginx) on port 80 of the
nodes the balancers forward port 80 to, answering this node's tokens and asking the role's other
nodes for theirs. certbot orders and renews (roles/acme.py), under one lock with the
reseller-hosts job (mailstack.resellerhosts), which orders resellers' host names the same way."""

from mailstack.deploy.configfile import ConfigFile
from mailstack.services import certificates
from mailstack.topology import port80_forwards

CERTBOT_LOCK = "/run/lock/mailstack-certbot"
"""Held around every certbot run of the deploy and of the reseller-hosts job, so neither fails
on the other's certbot lock."""


def challenge_names(deployment, host) -> list[str]:
    """The names this host orders by http-01 (none without ACME)."""
    if deployment.settings.tls.mode != "acme":
        return []
    return certificates.acme_names(deployment.settings, host.roles)


def peers(deployment, host) -> list[str]:
    """The other nodes of every role whose balancer forwards port 80 here."""
    return list(
        dict.fromkeys(
            str(member.private_ip)
            for role in host.roles
            if port80_forwards(deployment.settings, [role])
            for member in deployment.hosts(role)
            if member.private_ip != host.private_ip
        )
    )


def challenge_files(deployment, host) -> list[ConfigFile]:
    """nginx's challenge answerer (none without challenges here)."""
    if not challenge_names(deployment, host):
        return []
    forwards = port80_forwards(deployment.settings, host.roles)
    if len({forward.proxy_protocol for forward in forwards}) > 1:
        raise ValueError(f"{host.name}: balancers forward port 80 here with and without PROXY")
    return [
        ConfigFile.template(
            "acme",
            "/etc/nginx/conf.d/mailstack-acme.conf",
            # Not a reload: nginx cannot bind the private address while its old socket on every
            # address (the default site's) is still open.
            private_ip=str(host.private_ip),
            peers=peers(deployment, host),
            peer_port=certificates.ACME_PEER_PORT,
            proxy_protocol=any(forward.proxy_protocol for forward in forwards),
            load_balancer_ips=deployment.load_balancer_addresses,
            webroot=certificates.ACME_WEBROOT,
            redirect_to_https="web" in host.roles,
        )
    ]
