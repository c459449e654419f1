"""Where each host keeps its certificate, which names it must cover and who reads it, and the
script that installs a certificate and reloads the services reading it."""

from mailstack.deploy.configfile import ConfigFile
from mailstack.settings.topology import Role
from mailstack.topology import port80_forwards

TLS_DIR = "/etc/mailstack/tls"
CERTIFICATE = f"{TLS_DIR}/fullchain.pem"
PRIVATE_KEY = f"{TLS_DIR}/privkey.pem"
# An operator's certificate (tls.mode 'provided') is uploaded here, then installed like an
# ACME one.
PROVIDED_DIR = f"{TLS_DIR}/provided"
# Copies a certificate into place and reloads the services reading it: certbot's deploy hook,
# and the deploy's own step for provided certificates.
INSTALL_SCRIPT = "/usr/local/sbin/mailstack-install-certificate"

# certbot's name for the host's one certificate (/etc/letsencrypt/live/<name>/).
ACME_CERT_NAME = "mailstack"
# Where certbot puts http-01 tokens and the challenge server on port 80 serves them from.
ACME_WEBROOT = "/var/lib/mailstack/acme"
# The challenge server's second listener, on the private address only: it serves this node's
# tokens to the role's other nodes, which ask when a validation lands on them (never relayed
# further, so asking cannot loop).
ACME_PEER_PORT = 8402

_SERVICES_OF_ROLE: dict[str, tuple[str, ...]] = {
    "mx": ("mx", "submission"),
    "mailstore": ("mail",),
    "web": ("panel", "webmail"),
    "db": (),
}

# The systemd units that read CERTIFICATE and PRIVATE_KEY, reloaded when they change.
SERVICES_USING_CERTIFICATE: dict[str, tuple[str, ...]] = {
    "mx": ("postfix",),
    "mailstore": ("dovecot",),
    "web": ("nginx",),
    "db": (),
}


def certificate_names(settings, roles: list[Role] | tuple[Role, ...]) -> list[str]:
    """The public names a host with these roles answers TLS for (first is the subject)."""
    env = settings.environment
    names = [env.hostname(service) for role in roles for service in _SERVICES_OF_ROLE[role]]
    if "web" in roles:
        names += [f"mta-sts.{domain}" for domain in env.mail_domains]
    return list(dict.fromkeys(names))


def acme_names(settings, roles: list[Role] | tuple[Role, ...]) -> list[str]:
    """The names a host obtains by ACME http-01: those of its roles whose balancer forwards
    port 80 to it. (With a Hetzner-managed certificate the HTTP balancer terminates TLS for the
    web names itself, so web nodes need none.)"""
    return certificate_names(
        settings, [role for role in roles if port80_forwards(settings, [role])]
    )


def services_using_certificate(roles: list[Role] | tuple[Role, ...]) -> list[str]:
    return list(dict.fromkeys(s for role in roles for s in SERVICES_USING_CERTIFICATE[role]))


def config_files(deployment, host) -> list[ConfigFile]:
    return [
        ConfigFile.template(
            "certificates",
            INSTALL_SCRIPT,
            effect="none",
            mode="755",
            certificate=CERTIFICATE,
            private_key=PRIVATE_KEY,
            services=services_using_certificate(host.roles),
            acme=deployment.settings.tls.mode == "acme",
        )
    ]
