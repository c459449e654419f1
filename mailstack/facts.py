"""pyinfra facts the roles ask hosts for, beyond pyinfra's own."""

import shlex
from dataclasses import dataclass

from pyinfra.api import FactBase


@dataclass(frozen=True)
class AcmeLineage:
    """What certbot holds for one certificate name."""

    names: frozenset[str]
    server: str
    renew_before_expiry: str
    installed: bool
    """Whether the service paths carry this certificate (the deploy hook ran to its end)."""
    fresh: bool
    """Whether it stays valid longer than the renewal window (else it is due anyway)."""
    current_root: bool = True
    """Whether it chains to the root the ACME server publishes now (True when it publishes
    none, or cannot be asked). The lab's Pebble makes a new root at each start, and what it
    issued before is then trusted by no one."""


class CertbotLineage(FactBase):
    """certbot's certificate of a name (None before the first order): names, ACME server,
    renewal window, whether `installed_at` holds the same certificate, whether it is valid
    for more than `window_days` and whether it chains to the root published at `root_url`."""

    def command(
        self, cert_name: str, installed_at: str, window_days: int, root_url: str | None = None
    ) -> str:
        live = f"/etc/letsencrypt/live/{cert_name}"
        conf = f"/etc/letsencrypt/renewal/{cert_name}.conf"
        root_check = (
            f'root=$(mktemp); if curl -fsS --max-time 10 -o "$root" {shlex.quote(root_url)}; then '
            f'openssl verify -CAfile "$root" -untrusted {live}/chain.pem {live}/cert.pem '
            '>/dev/null 2>&1 && echo root=current || echo root=other; fi; rm -f "$root"; '
            if root_url
            else ""
        )
        return (
            f"[ -f {live}/fullchain.pem ] || exit 0; "
            f"echo names=$(openssl x509 -in {live}/fullchain.pem -noout -ext subjectAltName "
            "| tail -n +2); "
            f"echo server=$(sed -n 's/^server *= *//p' {conf}); "
            f"echo renew_before_expiry=$(sed -n 's/^renew_before_expiry *= *//p' {conf}); "
            f"cmp -s {live}/fullchain.pem {installed_at} && echo installed=yes || echo installed=no; "
            f"openssl x509 -in {live}/fullchain.pem -noout -checkend {window_days * 86400} "
            ">/dev/null && echo fresh=yes || echo fresh=no; " + root_check
        )

    def process(self, output: list[str]) -> AcmeLineage | None:
        values = dict(line.split("=", 1) for line in output if "=" in line)
        if not values:
            return None
        names = [part.strip().removeprefix("DNS:") for part in values["names"].split(",")]
        return AcmeLineage(
            names=frozenset(name for name in names if name),
            server=values.get("server", ""),
            renew_before_expiry=values.get("renew_before_expiry", ""),
            installed=values.get("installed") == "yes",
            fresh=values.get("fresh") == "yes",
            current_root=values.get("root") != "other",
        )


class UntrustedLocalCAs(FactBase):
    """Certificates in /usr/local/share/ca-certificates that update-ca-certificates has not
    added to the trust store yet (in the lab: the lab CA, which vouches for Pebble)."""

    default = list

    def command(self) -> str:
        return (
            "for crt in /usr/local/share/ca-certificates/*.crt; do "
            '[ -f "$crt" ] || continue; '
            'name=$(basename "$crt" .crt); '
            '[ -e "/etc/ssl/certs/$name.pem" ] || echo "$name"; '
            "done"
        )

    def process(self, output: list[str]) -> list[str]:
        return [line for line in output if line]


class VolumeContent(FactBase):
    """What a volume's device holds: None when the device is not on this host (the volume is
    attached elsewhere), "" when it is blank (blkid finds no filesystem or partition table and
    its first MiB is zeros), else what blkid names (e.g. "ext4") or "unknown" for other data."""

    def command(self, device: str) -> str:
        return (
            f"[ -b {device} ] || exit 0; "
            f'if found=$(blkid -p -o value -s TYPE -s PTTYPE {device}); then echo "$found"; '
            f"elif cmp -s -n 1048576 {device} /dev/zero; then echo blank; "
            "else echo unknown; fi"
        )

    def process(self, output: list[str]) -> str | None:
        found = " ".join(line.strip() for line in output if line.strip())
        if not found:
            return None
        return "" if found == "blank" else found


class ValkeySettings(FactBase):
    """Current values of some settings of a running Valkey on this host ({} when it does not
    answer, e.g. before it is installed): CONFIG GET on loopback."""

    default = dict

    def command(self, port: int, password: str, names: tuple[str, ...]) -> str:
        return (
            f"REDISCLI_AUTH={password} valkey-cli -p {port} --no-auth-warning "
            f"CONFIG GET {' '.join(names)} 2>/dev/null || true"
        )

    def process(self, output: list[str]) -> dict[str, str]:
        return dict(zip(output[::2], output[1::2], strict=False))


class SentinelMasters(FactBase):
    """What the local Sentinel holds for each primary it monitors ({} when it does not answer):
    name -> {option: value} as SENTINEL MASTERS reports it."""

    default = dict

    def command(self, port: int) -> str:
        return f"valkey-cli -p {port} --json SENTINEL MASTERS 2>/dev/null || true"

    def process(self, output: list[str]) -> dict[str, dict[str, str]]:
        import json

        try:
            masters = json.loads("\n".join(output) or "[]")
        except ValueError:
            return {}
        result = {}
        for master in masters if isinstance(masters, list) else []:
            values = (
                master
                if isinstance(master, dict)
                else dict(zip(master[::2], master[1::2], strict=False))
            )
            result[values.get("name", "")] = {k: str(v) for k, v in values.items()}
        return result


class PatroniDynamicConfig(FactBase):
    """The cluster-wide configuration Patroni keeps in etcd (GET /config of the local member's
    REST API), or None while no member answers."""

    def command(self, address: str, port: int) -> str:
        return f"curl -sf --max-time 5 http://{address}:{port}/config || true"

    def process(self, output: list[str]) -> dict | None:
        import json

        try:
            return json.loads("\n".join(output)) if output else None
        except ValueError:
            return None


class PostgresAccounts(FactBase):
    """Roles' password verifiers and databases' owners in the local PostgreSQL (a replica
    answers as well as the primary), or {} when it does not answer: {'role:NAME': verifier,
    'database:NAME': owner}."""

    default = dict

    def command(self, roles: tuple[str, ...], databases: tuple[str, ...]) -> str:
        role_list = ",".join(f"'{r}'" for r in roles)
        database_list = ",".join(f"'{d}'" for d in databases)
        query = (
            f"SELECT 'role:' || rolname, coalesce(rolpassword, '') FROM pg_authid"
            f" WHERE rolname IN ({role_list}) AND rolcanlogin"
            f" UNION ALL SELECT 'database:' || datname, pg_get_userbyid(datdba) FROM pg_database"
            f" WHERE datname IN ({database_list})"
        )
        return f'runuser -u postgres -- psql -XtA -F " " -c "{query}" 2>/dev/null || true'

    def process(self, output: list[str]) -> dict[str, str]:
        return dict(line.split(" ", 1) for line in output if " " in line)
