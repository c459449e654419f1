"""Two tenants with every role, for the panel's permission, isolation, web and API tests.

acme (panel.acme.test) hosts example.org; umbrella (panel.umbrella.test) hosts other.example.
Each has a reseller admin, a domain admin, mailboxes, a forwarding and an API token per admin;
`op` is the operator. Passwords are PASSWORD for admins, MAILBOX_PASSWORD for mailboxes.
"""

import functools
from dataclasses import dataclass, field

import pytest

PASSWORD = "correct-horse-battery-7"
MAILBOX_PASSWORD = "mailbox-password-77"


@dataclass
class Tenant:
    reseller: object
    domain: object
    mailbox: object
    other_mailbox: object
    forwarding: object
    reseller_admin: object
    domain_admin: object
    mailbox_user: object
    tokens: dict = field(default_factory=dict)
    """{'reseller': token, 'domain': token}"""

    @property
    def names(self) -> list[str]:
        """Strings that identify this tenant's objects on a page."""
        return [self.reseller.name, self.reseller.brand_name, self.domain.name,
                self.mailbox.address, self.forwarding.address]  # fmt: skip


@dataclass
class Tenants:
    operator: object
    operator_token: str
    acme: Tenant
    umbrella: Tenant


def make_admin(username: str, role: str, reseller=None, domains=()):
    from django.contrib.auth import get_user_model

    from tenancy.models import Profile

    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    profile = Profile.objects.create(user=user, role=role, reseller=reseller)
    profile.domains.set(domains)
    return user


def make_tenant(name: str, brand: str, domain_name: str, colour: str) -> Tenant:
    from rest_framework.authtoken.models import Token

    from accounts import operations
    from accounts.audit import COMMAND_LINE
    from accounts.models import Domain, Forwarding, Mailbox, Reseller
    from tenancy.backends import MailboxBackend

    reseller = operations.save(
        COMMAND_LINE,
        Reseller(name=name, brand_name=brand, primary_colour=colour,
                 panel_hostname=f"panel.{name}.test"),
    )  # fmt: skip
    domain = operations.create_domain(
        COMMAND_LINE, Domain(name=domain_name, reseller=reseller), vouched=True
    )
    mailboxes = []
    for local in ("user", "second"):
        mailbox = Mailbox(domain=domain, local_part=local, password_hash=_mailbox_hash())
        mailboxes.append(operations.save(COMMAND_LINE, mailbox))
    forwarding = operations.save_forwarding(
        COMMAND_LINE, Forwarding(domain=domain, local_part="sales"), [mailboxes[0].address]
    )
    reseller_admin = make_admin(f"{name}-admin", "reseller", reseller)
    domain_admin = make_admin(f"{name}-dom", "domain", reseller, [domain])
    mailbox_user = MailboxBackend().authenticate(
        None, username=mailboxes[0].address, password=MAILBOX_PASSWORD
    )
    tokens = {
        "reseller": Token.objects.create(user=reseller_admin).key,
        "domain": Token.objects.create(user=domain_admin).key,
    }
    return Tenant(reseller, domain, mailboxes[0], mailboxes[1], forwarding, reseller_admin,
                  domain_admin, mailbox_user, tokens)  # fmt: skip


@functools.cache
def _mailbox_hash() -> str:
    """MAILBOX_PASSWORD's hash, made once: Argon2id at Dovecot's cost takes a while."""
    from accounts.passwords import hash_password

    return hash_password(MAILBOX_PASSWORD)


@functools.cache
def _signing_key(bits: int) -> str:
    from mailstack.dkim import generate_private_key

    return generate_private_key(bits)


@pytest.fixture
def tenants(accounts, monkeypatch) -> Tenants:
    from rest_framework.authtoken.models import Token

    # Real keys, but one per run: generating 2048-bit RSA keys for every test costs seconds.
    monkeypatch.setattr("accounts.operations.generate_private_key", _signing_key)
    operator = make_admin("op", "operator")
    return Tenants(
        operator=operator,
        operator_token=Token.objects.create(user=operator).key,
        acme=make_tenant("acme", "Acme Mail", "example.org", "#aa0000"),
        umbrella=make_tenant("umbrella", "Umbrella Post", "other.example", "#00aa00"),
    )


MAILBOX_BACKEND = "tenancy.backends.MailboxBackend"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def login(client, user) -> None:
    """Log `client` in as `user` (admins by ModelBackend, mailbox users by MailboxBackend)."""
    backend = MAILBOX_BACKEND if user.username.startswith("mailbox:") else MODEL_BACKEND
    client.force_login(user, backend=backend)
