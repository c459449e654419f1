"""Where each host keeps its certificate, and which names it must cover."""

from mailstack.settings.topology import Role

TLS_DIR = "/etc/mailstack/tls"
CERTIFICATE = f"{TLS_DIR}/fullchain.pem"
PRIVATE_KEY = f"{TLS_DIR}/privkey.pem"

_SERVICES_OF_ROLE: dict[str, tuple[str, ...]] = {
    "mx": ("mx", "submission"),
    "mailstore": ("mail",),
    "web": ("panel", "webmail"),
    "db": (),
}


def certificate_names(settings, roles: list[Role] | tuple[Role, ...]) -> list[str]:
    """The public names a host with these roles answers TLS for (first is the subject)."""
    env = settings.environment
    names = [env.hostname(service) for role in roles for service in _SERVICES_OF_ROLE[role]]
    if "web" in roles:
        names += [f"mta-sts.{domain}" for domain in env.mail_domains]
    return list(dict.fromkeys(names))
