"""DKIM keys of the operator's mail domains: generated once, kept in the environment's secrets.

The private key goes to every mx host (any of them may sign a message), the public key into the
DNS records (`mailstack.dnsrecords`), which the Pulumi program publishes and the lab serves. A
key is stored per domain and selector, so a new selector (the `mail.dkim.selector` setting) makes
new keys while the old ones stay in the store until removed.
"""

import base64
from dataclasses import dataclass

from mailstack.secrets import SecretStore

# Where rspamd takes every signing key from (dkim_signing with use_redis): two hashes in the
# shared Valkey. The panel writes customer domains' entries, the rspamd role the operator's own.
SIGNING_SELECTORS_HASH = "mailstack:dkim:selectors"
"""`<domain>` -> the selector to sign the domain's mail with."""
SIGNING_KEYS_HASH = "mailstack:dkim:keys"
"""`<selector>.<domain>` -> the private key (PEM)."""


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    private_pem: str

    @property
    def public_key(self) -> str:
        """The p= value: the DER SubjectPublicKeyInfo in base64."""
        from cryptography.hazmat.primitives import serialization

        private = serialization.load_pem_private_key(self.private_pem.encode(), password=None)
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def record_text(self) -> str:
        return f"v=DKIM1; k=rsa; p={self.public_key}"


def generate_private_key(bits: int) -> str:
    """A new RSA signing key of `bits` bits, as unencrypted PKCS#8 PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def domain_keys(settings, store: SecretStore) -> list[DkimKey]:
    """The signing key of every mail domain for the current selector, generated when missing."""
    dkim = settings.mail.dkim
    return [
        DkimKey(
            domain=domain,
            selector=dkim.selector,
            private_pem=store.get(
                f"dkim/{domain}/{dkim.selector}",
                generate=lambda: generate_private_key(dkim.key_bits),
            ),
        )
        for domain in settings.environment.mail_domains
    ]
