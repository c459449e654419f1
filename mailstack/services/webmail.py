"""Webmail: Roundcube from Debian on the web nodes, run by PHP-FPM behind nginx (the node's one
web server, mailstack.services.web; Debian's Apache is not installed).

Roundcube keeps its data (sessions, users' settings, address books) in a database of its own
in the platform's PostgreSQL, as a role that owns that database and nothing else, so either web
node serves a logged-in user (both share the session key `des_key`). It reaches the mail
services the way every mail client does: IMAP, submission and ManageSieve through the load
balancers' public names, which /etc/hosts pins to the balancers' private addresses, checking
their certificates against the trust store (plus the ACME server's root where Debian lacks it).
Plugins: managesieve (filters, vacation), password (through the panel's
`/api/v1/mailbox-password/`, so the change is audited and ends the old sessions) and the
platform's own `mailstack` (the reseller's brand by host name; logging out a session whose
stored password the mail store refuses).
"""

import json
import secrets
import string
from urllib.parse import quote

from mailstack.deploy.configfile import ConfigFile
from mailstack.services import postgresql

PACKAGES = ["roundcube", "roundcube-core", "roundcube-pgsql", "roundcube-plugins"]
PHP_VERSION = "8.4"
"""Debian 13's PHP."""
PHP_PACKAGES = [f"php{PHP_VERSION}-fpm", "php-curl"]
FPM_UNIT = f"php{PHP_VERSION}-fpm"
FPM_POOL_DIR = f"/etc/php/{PHP_VERSION}/fpm/pool.d"
FPM_POOL = f"{FPM_POOL_DIR}/roundcube.conf"
FPM_SOCKET = "/run/php/roundcube.sock"
PHP_FILES = (
    "/etc/roundcube/config.inc.php",
    "/etc/roundcube/plugins/managesieve/config.inc.php",
    "/etc/roundcube/plugins/password/config.inc.php",
    "/var/lib/roundcube/plugins/mailstack/mailstack.php",
)
CHECK = f"php-fpm{PHP_VERSION} --test 2>&1 && " + " && ".join(
    f"php -l {path} >/dev/null" for path in PHP_FILES
)
"""PHP-FPM reads its pools; PHP parses Roundcube's configuration and the platform's plugin."""
CONFIG_DIR = "/etc/roundcube"
PUBLIC_HTML = "/var/lib/roundcube/public_html"
PLUGIN_DIR = "/var/lib/roundcube/plugins/mailstack"
BRANDS = "/var/lib/mailstack/brands/webmail.json"
"""Resellers' webmail host names and their brands, written by the reseller-hosts job."""
SCHEMA_TOOL = "/usr/local/sbin/mailstack-webmail-schema"
"""Creates or updates Roundcube's tables (`check` prints `current` when nothing is to do)."""
DES_KEY_SECRET = "webmail_des_key"
TRUSTED_ROOT = "/usr/local/share/ca-certificates/mailstack-acme-root.crt"
"""The ACME server's root, where Debian's bundle lacks it (tls.acme.root_certificate_url)."""
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PLUGINS = ["managesieve", "password", "mailstack"]
PASSWORD_API = "/api/v1/mailbox-password/"
IMAP_PORT = 993
SUBMISSION_PORT = 587
SIEVE_PORT = 4190
FPM_PROCESS_MIB = 128
"""memory_limit of a Roundcube process (attachments are handled in memory while encoding)."""


def max_upload_mib(settings) -> int:
    """Largest request webmail takes: a message as large as the platform accepts, base64-encoded
    (4/3) with room for the form around it."""
    return settings.mail.message_size_limit_bytes * 4 // 3 // (1024 * 1024) + 2


def _des_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(24))


def balancer_names(settings) -> dict[str, str]:
    """The public names webmail's mail clients use: IMAP and ManageSieve, submission."""
    env = settings.environment
    return {"mail": env.hostname("mail"), "submission": env.hostname("submission")}


def pinned_names(deployment) -> dict[str, list[str]]:
    """/etc/hosts entries of the web nodes: the public names of the balancers webmail talks
    to, at the balancers' private addresses (no trip out and back over the internet)."""
    settings = deployment.settings
    names = balancer_names(settings)
    return {
        names["mail"]: [deployment.load_balancer("mailaccess")],
        names["submission"]: [deployment.load_balancer("smtp")],
        settings.environment.hostname("panel"): [deployment.load_balancer("http")],
    }


def php(value) -> str:
    """A PHP literal for a string, number, bool or list of them (JSON's syntax is PHP's for
    these, with strings single-quoted so `$` is never interpolated)."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(php(item) for item in value) + "]"
    return json.dumps(value)


def config_files(deployment, host) -> list[ConfigFile]:
    settings = deployment.settings
    database = deployment.webmail_database
    names = balancer_names(settings)
    dsn = (
        f"pgsql://{quote(database.user, safe='')}:{quote(database.password, safe='')}"
        f"@{','.join(database.hosts)}:{database.port}/{database.name}?sslmode=require"
    )
    tls = {"verify_peer": True, "verify_peer_name": True, "cafile": CA_BUNDLE}
    # Readable by PHP-FPM's user only: the database password, the session key.
    # Roundcube reads its configuration at each request (PHP's opcache revalidates it).
    secret = {"user": "root", "group": "www-data", "mode": "640", "effect": "reload"}
    return [
        ConfigFile.template(
            "webmail",
            f"{CONFIG_DIR}/config.inc.php",
            **secret,
            php=php,
            db_dsn=dsn,
            db_target_session_attrs=database.target_session_attrs,
            db_connect_timeout=postgresql.CONNECT_TIMEOUT,
            des_key=deployment.secrets.get(DES_KEY_SECRET, _des_key),
            imap_host=f"ssl://{names['mail']}:{IMAP_PORT}",
            smtp_host=f"tls://{names['submission']}:{SUBMISSION_PORT}",
            tls=tls,
            product_name=settings.web.brand_name,
            plugins=PLUGINS,
            max_message_bytes=settings.mail.message_size_limit_bytes,
        ),
        ConfigFile.template(
            "webmail",
            f"{CONFIG_DIR}/plugins/managesieve/config.inc.php",
            **secret,
            php=php,
            sieve_host=f"tls://{names['mail']}:{SIEVE_PORT}",
            tls=tls,
        ),
        ConfigFile.template(
            "webmail",
            f"{CONFIG_DIR}/plugins/password/config.inc.php",
            **secret,
            php=php,
            api_url=f"https://{settings.environment.hostname('panel')}{PASSWORD_API}",
        ),
        ConfigFile.template(
            "webmail", f"{PLUGIN_DIR}/mailstack.php", effect="reload", php=php, brands=BRANDS
        ),
        ConfigFile.template(
            "webmail",
            FPM_POOL,
            socket=FPM_SOCKET,
            effect="reload",
            max_children=settings.web.webmail_workers,
            upload_mib=max_upload_mib(settings),
            memory_mib=FPM_PROCESS_MIB,
        ),
        ConfigFile.template("webmail", SCHEMA_TOOL, effect="none", mode="755"),
    ]
