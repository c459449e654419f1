"""pyinfra facts the roles ask hosts for, beyond pyinfra's own."""

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


class CertbotLineage(FactBase):
    """certbot's certificate of a name (None before the first order): names, ACME server,
    renewal window, whether `installed_at` holds the same certificate and whether it is valid
    for more than `window_days`."""

    def command(self, cert_name: str, installed_at: str, window_days: int) -> str:
        live = f"/etc/letsencrypt/live/{cert_name}"
        conf = f"/etc/letsencrypt/renewal/{cert_name}.conf"
        return (
            f"[ -f {live}/fullchain.pem ] || exit 0; "
            f"echo names=$(openssl x509 -in {live}/fullchain.pem -noout -ext subjectAltName "
            "| tail -n +2); "
            f"echo server=$(sed -n 's/^server *= *//p' {conf}); "
            f"echo renew_before_expiry=$(sed -n 's/^renew_before_expiry *= *//p' {conf}); "
            f"cmp -s {live}/fullchain.pem {installed_at} && echo installed=yes || echo installed=no; "
            f"openssl x509 -in {live}/fullchain.pem -noout -checkend {window_days * 86400} "
            ">/dev/null && echo fresh=yes || echo fresh=no"
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
