"""Webmail on the web hosts: Roundcube from Debian under PHP-FPM (nginx in front, roles/nginx.py),
its tables in its own database, created once per deploy from the first web host
(mailstack.services.webmail).
"""

from io import StringIO

from pyinfra import host
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.server import Command
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

from mailstack.deploy.kit import configure, name_hosts, packages, target
from mailstack.services import webmail

deployment, me = target()
acme = deployment.settings.tls.acme

# roundcube-core would set up its database with dbconfig-common, on a local server this host
# does not have; the database is the db role's and the tables this role's (below).
if "roundcube-core" not in (host.get_fact(DebPackages) or {}):
    server.shell(
        name="Leave Roundcube's database to the deploy (no dbconfig-common)",
        commands=[
            "echo 'roundcube-core roundcube/dbconfig-install boolean false'"
            " | debconf-set-selections"
        ],
    )
# PHP-FPM first, so that PHP's web server alternatives are met by it (never Apache's module).
packages("PHP-FPM", webmail.PHP_PACKAGES, no_recommends=True)
packages("Roundcube", webmail.PACKAGES, no_recommends=True)

# Webmail checks the platform's certificates; the lab's ACME server issues under a root of its
# own, new at each of its starts, which Debian's bundle lacks.
trust = []
if acme is not None and acme.root_certificate_url:
    url = acme.root_certificate_url
    published = host.get_fact(Command, f"curl -fsS --max-time 10 {url} || true") or ""
    if "BEGIN CERTIFICATE" in published:
        trust.append(
            files.put(
                name="Trust the ACME server's root",
                src=StringIO(published.strip() + "\n"),
                dest=webmail.TRUSTED_ROOT,
                mode="644",
            )
        )
    else:
        # Its first deploy: the ACME server starts earlier in this one.
        trust.append(
            server.shell(
                name="Trust the ACME server's root",
                commands=[
                    f"curl -fsS --max-time 30 --retry 5 --retry-all-errors {url}"
                    f" | sed -e '$a\\' > {webmail.TRUSTED_ROOT}"
                ],
            )
        )
    server.shell(
        name="Add it to the trust store",
        commands=["update-ca-certificates"],
        _if=any_changed(*trust),
    )

pins = [
    name_hosts(name, addresses, "a balancer for webmail")
    for name, addresses in webmail.pinned_names(deployment).items()
]
# Roundcube's own pool only; Debian's default pool would run processes no one uses.
default_pool = files.file(
    name="No default PHP-FPM pool", path=f"{webmail.FPM_POOL_DIR}/www.conf", present=False
)
files.directory(name="Roundcube's mailstack plugin", path=webmail.PLUGIN_DIR, mode="755")
configure(
    webmail.FPM_UNIT,
    webmail.config_files(deployment, me),
    check=webmail.CHECK,
    watch=[default_pool, *trust, *pins],
)

# Roundcube's tables, from one node: created in an empty database, updated after an upgrade.
if me.name == deployment.first("web").name:
    schema = host.get_fact(Command, f"{webmail.SCHEMA_TOOL} check 2>/dev/null || true")
    if schema != "current":
        server.shell(
            name="Create or update Roundcube's tables",
            commands=[f"{webmail.SCHEMA_TOOL} apply"],
        )
