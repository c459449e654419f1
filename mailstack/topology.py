"""What the load balancers forward, to which role: Hetzner's in production, HAProxy in the lab.

The hosts and the balancers' addresses themselves are planned in mailstack.settings.plan.
"""

from dataclasses import dataclass

from mailstack.settings.plan import LOAD_BALANCER_PURPOSES
from mailstack.settings.topology import Role


@dataclass(frozen=True)
class BalancedService:
    """A TCP port a load balancer forwards to the same port on its role's hosts."""

    port: int
    proxy_protocol: bool
    why: str


# What each load balancer forwards, to which role: Hetzner's in production, HAProxy in the lab.
# PROXY protocol carries the real client address to Postfix (postscreen, smtpd) and Dovecot,
# which log it and rate-limit by it.
BALANCED_SERVICES: dict[str, tuple[Role, list[BalancedService]]] = {
    "smtp": (
        "mx",
        [
            BalancedService(25, True, "inbound SMTP to postscreen"),
            BalancedService(465, True, "submission with implicit TLS"),
            BalancedService(587, True, "submission with STARTTLS"),
        ],
    ),
    "mailaccess": (
        "mailstore",
        [
            BalancedService(143, True, "IMAP with STARTTLS"),
            BalancedService(993, True, "IMAP with implicit TLS"),
            BalancedService(110, True, "POP3 with STARTTLS"),
            BalancedService(995, True, "POP3 with implicit TLS"),
            BalancedService(4190, True, "ManageSieve"),
        ],
    ),
    "http": ("web", []),
}
# The mail host names get their certificates by ACME http-01 on the nodes behind these. With
# PROXY protocol like every other port 80 forward, so one listener on a node serves them all
# (the single profile puts mx, mailstore and web behind three balancers on one host).
ACME_HTTP = BalancedService(80, True, "ACME http-01 challenges for the mail host names")
# With a Hetzner-managed certificate (dns.managed_zone) the HTTP balancer terminates TLS and
# forwards plain HTTP here, with X-Forwarded-For and X-Forwarded-Proto and without PROXY protocol
# (Hetzner's HTTP services cannot send it); its health check asks /healthz. A port of its own,
# so it never meets the PROXY-protocol port 80 the other balancers forward for ACME on a host
# of the single profile.
HTTPS_TERMINATED = BalancedService(
    8080, False, "HTTP from the balancer that terminated TLS (managed certificate)"
)
# Without a Hetzner-managed certificate, HTTP and HTTPS pass through to the web nodes.
HTTP_PASSTHROUGH = [
    BalancedService(80, True, "HTTP, redirected to HTTPS by the web nodes"),
    BalancedService(443, True, "HTTPS, terminated by the web nodes"),
]


def balanced_services(settings, purpose: str) -> tuple[Role, list[BalancedService]]:
    """The role behind a load balancer and the TCP services it forwards there.

    The HTTPS balancer with a Hetzner-managed certificate terminates TLS itself and is not a
    plain TCP forward; it has no entries here then.
    """
    role, services = BALANCED_SERVICES[purpose]
    if purpose == "http":
        return role, [] if settings.dns.managed_zone else list(HTTP_PASSTHROUGH)
    if settings.tls.mode == "acme" and settings.tls.acme.challenge == "http-01":
        services = [*services, ACME_HTTP]
    return role, list(services)


def https_terminated_backend(settings) -> BalancedService | None:
    """The port the HTTP balancer sends requests to after terminating TLS itself (with a
    Hetzner-managed certificate), or None when HTTPS passes through to the web nodes."""
    return HTTPS_TERMINATED if settings.dns.managed_zone else None


def port80_forwards(settings, roles) -> list[BalancedService]:
    """The port 80 services the balancers forward to a host with these roles (http-01 reaches
    the host only through them)."""
    return [
        service
        for purpose in LOAD_BALANCER_PURPOSES
        for role, services in [balanced_services(settings, purpose)]
        if role in roles
        for service in services
        if service.port == 80
    ]
