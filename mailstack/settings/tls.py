"""Certificates for every TLS endpoint."""

from typing import Literal

from pydantic import Field, model_validator

from mailstack.settings.base import Model


class AcmeSettings(Model):
    """Certificates from an ACME server (Let's Encrypt in production, Pebble in the lab)."""

    contact_email: str = Field(
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="Contact address registered with the ACME account (expiry notices).",
    )
    directory_url: str = Field(
        "https://acme-v02.api.letsencrypt.org/directory",
        pattern=r"^https://",
        description="The ACME server's directory URL.",
        examples=["https://acme-staging-v02.api.letsencrypt.org/directory"],
    )
    challenge: Literal["http-01", "dns-01"] = Field(
        "http-01", description="How the ACME server checks control of the host names."
    )
    renew_days_before_expiry: int = Field(
        30, ge=1, le=60, description="Renew a certificate this many days before it expires."
    )
    root_certificate_url: str | None = Field(
        None,
        pattern=r"^https://",
        description="Where an ACME server whose root Debian's CA bundle lacks publishes the "
        "root it issues under (the lab's Pebble: its management API's /roots/0). The web "
        "nodes add it to their trust store, so webmail can check the platform's own "
        "certificates (IMAP, submission, ManageSieve, the panel's API). Leave empty for Let's "
        "Encrypt, whose roots Debian trusts.",
    )


class ProvidedCertificate(Model):
    """A certificate the operator brings, as files on the deploying machine."""

    certificate_path: str = Field(description="PEM file with the certificate and its chain.")
    key_path: str = Field(description="PEM file with the private key (kept out of git).")


class TlsSettings(Model):
    """How the platform gets its certificates."""

    mode: Literal["acme", "provided"] = Field(
        "acme",
        description="'acme' obtains and renews certificates; 'provided' installs given ones.",
    )
    acme: AcmeSettings | None = Field(None, description="ACME account, when mode is 'acme'.")
    provided: ProvidedCertificate | None = Field(
        None, description="The certificate files, when mode is 'provided'."
    )

    @model_validator(mode="after")
    def _mode_has_its_section(self) -> "TlsSettings":
        if self.mode == "acme" and self.acme is None:
            raise ValueError("mode 'acme' needs the acme section (contact_email at least)")
        if self.mode == "provided" and self.provided is None:
            raise ValueError("mode 'provided' needs the provided section")
        return self
