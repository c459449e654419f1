"""One run of the reseller-hosts job (see the package's docstring): what the account data wants,
what this node has, and the steps between them.

Pure parts (`Reseller`, `plan_sites`, `render_site`, `Backoff`) are separate from the ones that
touch the node (`Node`), so the decisions are tested without certbot or nginx.
"""

import json
import logging
import os
import re
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("mailstack.resellerhosts")

HOST_NAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]$"
)
"""A lower-case ASCII host name (IDNA names in their xn-- form), as the account data stores."""
COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
LINEAGE_PREFIX = "mailstack-reseller-"
FIRST_PAUSE = 300
LONGEST_PAUSE = 6 * 3600
QUERY = (
    "SELECT id, brand_name, primary_colour, secondary_colour, logo_url,"
    " coalesce(logo_content_type, '') <> '', panel_hostname, webmail_hostname"
    " FROM accounts_reseller WHERE enabled ORDER BY id"
)


@dataclass(frozen=True)
class Reseller:
    id: int
    brand_name: str
    primary_colour: str
    secondary_colour: str
    logo_url: str
    has_logo: bool
    panel: str | None
    webmail: str | None

    @property
    def lineage(self) -> str:
        """certbot's name for this reseller's certificate (by id: a rename keeps it)."""
        return f"{LINEAGE_PREFIX}{self.id}"

    def names(self) -> dict[str, str]:
        """Its valid host names by site ('panel', 'webmail'); a malformed one is left out."""
        found = {}
        for site, name in (("panel", self.panel), ("webmail", self.webmail)):
            if not name:
                continue
            if HOST_NAME.fullmatch(name):
                found[site] = name
            else:
                log.error("reseller %d: host name %r is not a host name; left out", self.id, name)
        return found

    def webmail_brand(self) -> dict:
        """What Roundcube's mailstack plugin shows on this reseller's webmail name."""
        logo = ""
        if self.has_logo and self.panel:
            logo = f"https://{self.panel}/brand/{self.id}/logo"
        elif self.logo_url.startswith("https://"):
            logo = self.logo_url
        return {
            "name": self.brand_name,
            "primary_colour": self.primary_colour if COLOUR.match(self.primary_colour) else None,
            "secondary_colour": (
                self.secondary_colour if COLOUR.match(self.secondary_colour) else None
            ),
            "logo_url": logo,
        }


@dataclass(frozen=True)
class Config:
    """The job's configuration, written by the deploy (roles/resellerhosts.py)."""

    accounts_dsn: str
    brands_file: Path
    state_file: Path
    sites_dir: Path
    snippets: dict[str, str]
    """'listen', 'panel', 'webmail': the nginx snippets a server block includes."""
    acme: dict | None
    """directory_url, contact_email, webroot, certbot_lock; None: order nothing, write no sites."""

    @classmethod
    def read(cls, path: str | Path) -> "Config":
        values = json.loads(Path(path).read_text())
        return cls(
            accounts_dsn=values["accounts_dsn"],
            brands_file=Path(values["brands_file"]),
            state_file=Path(values["state_file"]),
            sites_dir=Path(values["sites_dir"]),
            snippets=dict(values["snippets"]),
            acme=values.get("acme"),
        )


def read_resellers(dsn: str) -> list[Reseller]:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=10) as connection:
        return [Reseller(*row) for row in connection.execute(QUERY).fetchall()]


# --- certificates' names and the retry pause --------------------------------------------------


@dataclass
class Backoff:
    """Failed orders per certificate: after the n-th failure for the same names, the next try
    waits FIRST_PAUSE * 2^(n-1) seconds, at most LONGEST_PAUSE (ACME servers limit failures)."""

    entries: dict[str, dict] = field(default_factory=dict)

    def may_try(self, lineage: str, names: list[str], now: float) -> bool:
        entry = self.entries.get(lineage)
        return entry is None or entry["names"] != names or now >= entry["next_try"]

    def failed(self, lineage: str, names: list[str], now: float) -> float:
        entry = self.entries.get(lineage)
        failures = entry["failures"] + 1 if entry and entry["names"] == names else 1
        pause = min(FIRST_PAUSE * 2 ** (failures - 1), LONGEST_PAUSE)
        self.entries[lineage] = {"names": names, "failures": failures, "next_try": now + pause}
        return pause

    def succeeded(self, lineage: str) -> None:
        self.entries.pop(lineage, None)


# --- nginx server blocks ----------------------------------------------------------------------


def plan_sites(resellers: Iterable[Reseller], covered: dict[str, set[str]]) -> dict[int, list]:
    """Per reseller id, the (site, host name, lineage) to serve: every name of the reseller
    that its certificate (`covered`: lineage -> names) covers already."""
    plan = {}
    for reseller in resellers:
        have = covered.get(reseller.lineage, set())
        sites = [
            (site, name, reseller.lineage)
            for site, name in reseller.names().items()
            if name in have
        ]
        if sites:
            plan[reseller.id] = sites
    return plan


def render_site(reseller_id: int, sites: list, snippets: dict[str, str]) -> str:
    blocks = [
        f"# Managed by mailstack (mailstack.resellerhosts): reseller {reseller_id}'s host names,"
        " rewritten every minute from the account data.\n"
    ]
    for site, name, lineage in sites:
        live = f"/etc/letsencrypt/live/{lineage}"
        blocks.append(
            "server {\n"
            f"    include {snippets['listen']};\n"
            f"    server_name {name};\n"
            f"    ssl_certificate {live}/fullchain.pem;\n"
            f"    ssl_certificate_key {live}/privkey.pem;\n"
            f"    include {snippets[site]};\n"
            "}\n"
        )
    return "\n".join(blocks)


# --- the node ---------------------------------------------------------------------------------


def write_if_changed(path: Path, content: str, mode: int = 0o644) -> bool:
    """Replace a file (by renaming a complete copy) when its content differs."""
    if path.exists() and path.read_text() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_text(content)
    temporary.chmod(mode)
    os.replace(temporary, path)
    return True


class Node:
    """certbot, nginx and the files of this node."""

    def __init__(self, config: Config):
        self.config = config

    def covered(self) -> dict[str, set[str]]:
        """The names each reseller certificate on this node covers (lineage -> names)."""
        from cryptography import x509

        found = {}
        for live in Path("/etc/letsencrypt/live").glob(f"{LINEAGE_PREFIX}*"):
            try:
                certificate = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
                names = certificate.extensions.get_extension_for_class(
                    x509.SubjectAlternativeName
                ).value.get_values_for_type(x509.DNSName)
            except (OSError, ValueError, x509.ExtensionNotFound) as error:
                log.error("%s: unreadable certificate: %s", live.name, error)
                continue
            found[live.name] = set(names)
        return found

    def certbot(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["flock", self.config.acme["certbot_lock"], "certbot", *args],
            capture_output=True,
            text=True,
            timeout=600,
        )

    def order(self, lineage: str, names: list[str]) -> subprocess.CompletedProcess:
        acme = self.config.acme
        return self.certbot(
            "certonly", "--non-interactive", "--agree-tos",
            "--email", acme["contact_email"], "--server", acme["directory_url"],
            "--webroot", "--webroot-path", acme["webroot"],
            "--cert-name", lineage, "--domains", ",".join(names),
            "--deploy-hook", "systemctl reload nginx", "--force-renewal",
        )  # fmt: skip

    def delete(self, lineage: str) -> subprocess.CompletedProcess:
        return self.certbot("delete", "--non-interactive", "--cert-name", lineage)

    def write_sites(self, plan: dict[int, list]) -> bool:
        """Make the sites directory hold exactly the planned server blocks; reload nginx when
        that changed and its configuration passes `nginx -t` (else put the old files back).
        Returns whether nginx now serves a changed set."""
        directory = self.config.sites_dir
        directory.mkdir(parents=True, exist_ok=True)
        wanted = {
            f"reseller-{rid}.conf": render_site(rid, sites, self.config.snippets)
            for rid, sites in plan.items()
        }
        before = {p.name: p.read_text() for p in directory.glob("*.conf")}
        if before == wanted:
            return False
        for name in set(before) - set(wanted):
            (directory / name).unlink()
        for name, content in wanted.items():
            write_if_changed(directory / name, content)
        check = subprocess.run(["nginx", "-t", "-q"], capture_output=True, text=True)
        if check.returncode != 0:
            for name in set(wanted) - set(before):
                (directory / name).unlink()
            for name, content in before.items():
                write_if_changed(directory / name, content)
            log.error("nginx refuses the resellers' sites, the old ones stay: %s", check.stderr)
            return False
        subprocess.run(["systemctl", "reload", "nginx"], check=True)
        log.info("nginx serves resellers' names: %s",
                 ", ".join(name for sites in plan.values() for _s, name, _l in sites) or "none")  # fmt: skip
        return True


def run(config: Config, node: Node, resellers: list[Reseller], now: float | None = None) -> int:
    """Bring this node in line with the account data; returns the number of failed steps."""
    now = time.time() if now is None else now
    brands = {
        reseller.webmail: reseller.webmail_brand()
        for reseller in resellers
        if "webmail" in reseller.names()
    }
    if write_if_changed(config.brands_file, json.dumps(brands, indent=2, sort_keys=True) + "\n"):
        log.info("webmail brands: %s", ", ".join(sorted(brands)) or "none")
    if config.acme is None:
        return 0
    state = Backoff(json.loads(config.state_file.read_text()) if config.state_file.exists() else {})
    failures = 0
    covered = node.covered()
    for reseller in resellers:
        names = sorted(reseller.names().values())
        if not names or covered.get(reseller.lineage) == set(names):
            continue
        if not state.may_try(reseller.lineage, names, now):
            continue
        result = node.order(reseller.lineage, names)
        if result.returncode == 0:
            state.succeeded(reseller.lineage)
            log.info("%s: certificate for %s", reseller.lineage, ", ".join(names))
        else:
            failures += 1
            pause = state.failed(reseller.lineage, names, now)
            log.error("%s: ordering %s failed, next try in %d s: %s", reseller.lineage,
                      ", ".join(names), pause, (result.stderr or result.stdout).strip()[-2000:])  # fmt: skip
    covered = node.covered()
    node.write_sites(plan_sites(resellers, covered))
    # Certificates of names no reseller holds any more, after nginx stopped using them.
    wanted = {r.lineage for r in resellers if r.names()}
    for lineage in sorted(set(covered) - wanted):
        if node.delete(lineage).returncode == 0:
            state.succeeded(lineage)
            log.info("%s: deleted, no reseller uses its names any more", lineage)
        else:
            failures += 1
    write_if_changed(config.state_file, json.dumps(state.entries, indent=2, sort_keys=True) + "\n",
                     mode=0o600)  # fmt: skip
    return failures
