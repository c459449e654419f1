"""The web nodes' sites in nginx (the one web server on the node, mailstack.services.nginx): the
panel (gunicorn on loopback), webmail (Roundcube through PHP-FPM), the MTA-STS policy, and the
resellers' own host names (server blocks the reseller-hosts job writes, mailstack.resellerhosts).

How requests arrive depends on the HTTP balancer (mailstack.topology):
- HTTPS passes through (no Hetzner-managed certificate, the lab): TLS on port 443 with PROXY
  protocol, terminated here with the node's ACME certificate (resellers' names with theirs);
  port 80 answers ACME challenges and redirects the rest (mailstack.services.acme).
- The balancer terminates TLS (dns.managed_zone): plain HTTP on `HTTPS_TERMINATED.port` with
  X-Forwarded-For, for the names the managed certificate covers; `/healthz` for its check.

Either way nginx works out the client's address (the PROXY header or the balancer's
X-Forwarded-For entry) and hands the panel only that, so a client cannot claim another.
"""

from mailstack.deploy.configfile import ConfigFile
from mailstack.dnsrecords import mta_sts_policy
from mailstack.services import certificates, panel, webmail
from mailstack.topology import https_terminated_backend

SITES = "/etc/nginx/conf.d/mailstack-web.conf"
SNIPPETS = "/etc/nginx/snippets"
LISTEN_SNIPPET = f"{SNIPPETS}/mailstack-listen.conf"
"""How every site of the node is reached (listen, TLS protocols, the client's address)."""
PANEL_SNIPPET = f"{SNIPPETS}/mailstack-panel.conf"
WEBMAIL_SNIPPET = f"{SNIPPETS}/mailstack-webmail.conf"
RESELLER_SITES = "/etc/nginx/mailstack-resellers"
"""Server blocks of resellers' own host names, written by the reseller-hosts job."""
MTA_STS_POLICY = "/etc/mailstack/mta-sts.txt"
HTTPS_PORT = 443


def tls_at_nodes(settings) -> bool:
    """Whether the web nodes terminate TLS themselves (the balancer passes HTTPS through)."""
    return https_terminated_backend(settings) is None


def listen(deployment, host) -> str:
    """The listen directive's address and options of every site."""
    terminated = https_terminated_backend(deployment.settings)
    if terminated is not None:
        return f"{host.private_ip}:{terminated.port}"
    return f"{host.private_ip}:{HTTPS_PORT} ssl proxy_protocol"


def platform_names(settings) -> dict[str, list[str]]:
    """The platform's own host names of each site."""
    env = settings.environment
    return {
        "panel": [env.hostname("panel")],
        "webmail": [env.hostname("webmail")],
        "mta_sts": [f"mta-sts.{domain}" for domain in env.mail_domains],
    }


def site_files(deployment, host) -> list[ConfigFile]:
    """nginx's files for the web tier (none on hosts without the web role)."""
    if "web" not in host.roles:
        return []
    settings = deployment.settings
    tls = tls_at_nodes(settings)
    terminated = https_terminated_backend(settings)
    names = platform_names(settings)
    return [
        # A new listen address takes a restart (nginx keeps its sockets over a reload).
        ConfigFile.template(
            "web",
            LISTEN_SNIPPET,
            listen=listen(deployment, host),
            tls=tls,
            load_balancer_ips=[deployment.load_balancer("http")],
        ),
        ConfigFile.template(
            "web",
            SITES,
            listen=listen(deployment, host),
            tls=tls,
            names=names,
            certificate=certificates.CERTIFICATE,
            private_key=certificates.PRIVATE_KEY,
            listen_snippet=LISTEN_SNIPPET,
            panel_snippet=PANEL_SNIPPET,
            webmail_snippet=WEBMAIL_SNIPPET,
            panel_listen=panel.LISTEN,
            panel_host=names["panel"][0],
            mta_sts_policy=MTA_STS_POLICY,
            reseller_sites=RESELLER_SITES if tls else None,
            health_check=terminated is not None,
        ),
        ConfigFile.template(
            "web",
            PANEL_SNIPPET,
            effect="reload",
            static_root=panel.STATIC_ROOT,
        ),
        ConfigFile.template(
            "web",
            WEBMAIL_SNIPPET,
            effect="reload",
            public_html=webmail.PUBLIC_HTML,
            fpm_socket=webmail.FPM_SOCKET,
            max_body_mib=webmail.max_upload_mib(settings),
        ),
        # Read at each request.
        ConfigFile.literal(MTA_STS_POLICY, mta_sts_policy(settings), effect="none"),
    ]
