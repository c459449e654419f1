"""The reseller-hosts job on the web nodes (mailstack.resellerhosts): resellers' own host names
get certificates, nginx server blocks and webmail's brand without a deploy, from a timer every
minute. Its code and venv come from roles/venv.py."""

import json

from mailstack.deploy.configfile import ConfigFile
from mailstack.deploy.deployment import APP_SOURCE, APP_VENV, code_version
from mailstack.services import acme, certificates, postgresql, web, webmail

UNIT = "mailstack-reseller-hosts"
CONFIG = "/etc/mailstack/reseller-hosts.json"
STATE_DIR = "/var/lib/mailstack/reseller-hosts"
OUTPUT_DIRS = {
    "webmail brands": webmail.BRANDS.rsplit("/", 1)[0],
    "nginx sites": web.RESELLER_SITES,
}
"""Where the job writes for others to read (the role makes them before the job's first run)."""
CHECK = (
    f"env PYTHONPATH={APP_SOURCE} {APP_VENV}/bin/python -m mailstack.resellerhosts"
    f" --config {CONFIG} --check-config"
)


def job_config(deployment) -> dict:
    settings = deployment.settings
    ordering = settings.tls.mode == "acme" and web.tls_at_nodes(settings)
    return {
        "accounts_dsn": postgresql.client_dsn(deployment.database_writer, connect_timeout=10),
        "brands_file": webmail.BRANDS,
        "state_file": f"{STATE_DIR}/state.json",
        "sites_dir": web.RESELLER_SITES,
        "snippets": {
            "listen": web.LISTEN_SNIPPET,
            "panel": web.PANEL_SNIPPET,
            "webmail": web.WEBMAIL_SNIPPET,
        },
        # Names need certificates the nodes order themselves: without ACME, or behind a
        # balancer that terminates TLS, the job keeps webmail's brands only.
        "acme": {
            "directory_url": settings.tls.acme.directory_url,
            "contact_email": settings.tls.acme.contact_email,
            "webroot": certificates.ACME_WEBROOT,
            "certbot_lock": acme.CERTBOT_LOCK,
        }
        if ordering
        else None,
    }


def config_files(deployment, host) -> list[ConfigFile]:
    unit = {
        "app_venv": APP_VENV,
        "app_source": APP_SOURCE,
        "config": CONFIG,
        "code_version": code_version(),
        "writable": [
            "/etc/letsencrypt",
            "/var/lib/letsencrypt",
            "/var/log/letsencrypt",
            "/var/log/nginx",
            certificates.ACME_WEBROOT,
            STATE_DIR,
            *OUTPUT_DIRS.values(),
            "/run/lock",
        ],
    }
    return [
        # Holds the panel role's password: root only (the job runs as root, for certbot).
        ConfigFile.literal(CONFIG, json.dumps(job_config(deployment), indent=2) + "\n", mode="600"),
        ConfigFile.template("resellerhosts", f"/etc/systemd/system/{UNIT}.service", **unit),
        ConfigFile.template("resellerhosts", f"/etc/systemd/system/{UNIT}.timer"),
    ]
