"""Every change to the account data, one way for the commands, the web views and the API.

Each operation validates completely (fields, forwarding loops, ownership), stores, and writes
its audit entry in one transaction; a refused change leaves nothing behind. Errors are
ValidationErrors keyed by field, which forms, serializers and commands show as they are.
"""

import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import audit, dkimstore, dnscheck, loops, sessions
from accounts.audit import Actor
from accounts.lifecycle import DomainKey, RemovedMailbox
from accounts.models import Domain, Forwarding, ForwardingTarget, Mailbox, Ownership, Reseller
from accounts.passwords import hash_password
from mailstack.dkim import generate_private_key


def reseller_id_of(obj) -> int | None:
    """The tenant an object belongs to, for the audit log's visibility."""
    if isinstance(obj, Reseller):
        return obj.pk
    if isinstance(obj, Domain):
        return obj.reseller_id
    domain = getattr(obj, "domain", None)
    if domain is not None:
        return domain.reseller_id
    mailbox = getattr(obj, "mailbox", None)
    return mailbox.domain.reseller_id if mailbox is not None else None


def _before(obj) -> dict | None:
    if obj.pk is None:
        return None
    return audit.snapshot(type(obj).objects.get(pk=obj.pk))


@transaction.atomic
def save(actor: Actor, obj):
    """Validate and store a new or changed object (reseller, domain, mailbox, forwarding,
    mailbox settings); a catch-all change is checked for loops."""
    if isinstance(obj, Domain) and obj.pk is None:
        raise TypeError("new domains are made by create_domain")
    stored = type(obj).objects.get(pk=obj.pk) if obj.pk is not None else None
    before = audit.snapshot(stored) if stored is not None else None
    obj.full_clean()
    if isinstance(obj, Domain):
        _check_catch_all(obj)
    if isinstance(obj, Forwarding) and obj.keep_copy:
        _check_keep_copy(obj)
    obj.save()
    audit.record(
        actor,
        "change" if before else "create",
        obj,
        reseller_id=reseller_id_of(obj),
        before=before,
        after=audit.snapshot(obj),
    )
    # A changed password or a mailbox, domain or reseller that stops taking logins ends the
    # open sessions on the mail store.
    sessions.end_after_commit(sessions.masks_to_end(stored, obj))
    return obj


def _check_catch_all(domain: Domain) -> None:
    if domain.catch_all:
        check_local_target(domain.catch_all, "catch_all", own_domain=domain)
    try:
        loops.check_no_loops(catch_alls={domain.name: domain.catch_all})
    except ValidationError as error:
        raise ValidationError({"catch_all": error.messages}) from None


def check_local_target(address: str, field: str, own_domain: Domain | None = None) -> str:
    """A target in a hosted domain must be a mailbox or forwarding there (it is the same
    rule the commands apply); returns the stored form."""
    from accounts.addresses import parse_target

    try:
        stored = parse_target(address)
    except ValidationError as error:
        raise ValidationError({field: error.messages}) from None
    name = stored.rpartition("@")[2]
    hosted = Domain.objects.filter(name=name).exists() or (
        own_domain is not None and own_domain.name == name
    )
    if hosted:
        stored = stored.lower()
        if not (
            Mailbox.objects.filter(address=stored).exists()
            or Forwarding.objects.filter(address=stored).exists()
        ):
            raise ValidationError({field: f"{stored} is neither a mailbox nor a forwarding here"})
    return stored


def _check_keep_copy(forwarding: Forwarding) -> None:
    if not Mailbox.objects.filter(address=forwarding.address).exists():
        raise ValidationError(
            {"keep_copy": f"{forwarding.address} has no mailbox to keep a copy in; add one first"}
        )


@transaction.atomic
def delete(actor: Actor, obj) -> None:
    """Remove a reseller or forwarding, or release a sending hold (domains and mailboxes have
    their own operations)."""
    if isinstance(obj, Domain | Mailbox):
        raise TypeError("use remove_domain or remove_mailbox")
    if isinstance(obj, Reseller):
        owned = list(obj.domains.values_list("name", flat=True))
        if owned:
            raise ValidationError(
                {"name": f"reseller {obj.name!r} still owns {len(owned)} domain(s): "
                 f"{', '.join(owned)}; remove them or give them to another reseller first"}
            )  # fmt: skip
    before = audit.snapshot(obj)
    # A removed reseller's entries stay for operators; its own admins are gone with it.
    reseller_id = None if isinstance(obj, Reseller) else reseller_id_of(obj)
    obj.delete()
    audit.record(actor, "delete", obj, reseller_id=reseller_id, before=before)


# Domains -----------------------------------------------------------------------------------


def operator_domains() -> set[str]:
    """The operator's own mail domains (platform settings), whose keys the deploy manages."""
    platform = settings.MAILPANEL_PLATFORM
    return set(platform.environment.mail_domains) if platform else set()


@transaction.atomic
def create_domain(actor: Actor, domain: Domain, *, vouched: bool = False) -> Domain:
    """Host a new domain: stored, its DKIM key made and handed to rspamd.

    It takes mail once its ownership is proven (prove_ownership) or, with `vouched` (operators
    only: the command line, the operator's panel), at once. The signing store is written inside
    the transaction: when it fails, the domain is not created. Without a configured store the
    key is kept and `mailstack-panel dkim sync` publishes it later.
    """
    if vouched and actor.role != "operator":
        raise PermissionError("only operators vouch for a domain")
    if vouched:
        domain.ownership, domain.ownership_proven = Ownership.OPERATOR, timezone.now()
    catch_all, domain.catch_all = domain.catch_all, ""
    domain.full_clean()
    domain.save()
    if catch_all:
        domain.catch_all = catch_all
        _check_catch_all(domain)
        domain.save()
    audit.record(
        actor, "create", domain, reseller_id=domain.reseller_id, after=audit.snapshot(domain)
    )
    if domain.name not in operator_domains():
        dkim = settings.MAILPANEL_MAIL_POLICY.dkim
        key = DomainKey.objects.create(
            domain=domain, selector=dkim.selector, private_pem=generate_private_key(dkim.key_bits)
        )
        if dkimstore.configured():
            dkimstore.publish(dkimstore.SigningKey(domain.name, key.selector, key.private_pem))
    return domain


@transaction.atomic
def remove_domain(actor: Actor, domain: Domain, *, force: bool = False) -> list[str]:
    """Stop hosting a domain: its mailboxes' mail becomes unreachable (kept until the retention
    deadline), its forwardings and keys go. Returns warnings (a key rspamd still holds)."""
    mailboxes, forwardings = domain.mailboxes.count(), domain.forwardings.count()
    if (mailboxes or forwardings) and not force:
        raise ValidationError(
            {"name": f"{domain.name} still has {mailboxes} mailbox(es) and {forwardings} "
             "forwarding(s); remove them first or use --force"}
        )  # fmt: skip
    for forwarding in domain.forwardings.all():
        delete(actor, forwarding)
    for mailbox in domain.mailboxes.all():
        remove_mailbox(actor, mailbox)
    selectors = list(domain.keys.values_list("selector", flat=True))
    before = audit.snapshot(domain)
    name, reseller_id = domain.name, domain.reseller_id
    domain.delete()
    audit.record(actor, "delete", domain, reseller_id=reseller_id, before=before)
    warnings: list[str] = []
    if selectors and dkimstore.configured():

        def withdraw() -> None:
            try:
                dkimstore.withdraw(name, selectors)
            except dkimstore.SigningStoreError as error:
                warnings.append(f"{error}; run `mailstack-panel dkim sync` when it is back")

        # After the commit: a rolled-back removal must keep signing.
        transaction.on_commit(withdraw)
    return warnings


@transaction.atomic
def prove_ownership(actor: Actor, domain: Domain) -> None:
    """Check the domain's TXT record `_mailstack-challenge.<domain>` for its token; on success
    the domain goes live. ValidationError says what to publish otherwise."""
    name = dnscheck.challenge_name(domain.name)
    try:
        values = dnscheck.lookup(name, "TXT")
    except dnscheck.LookupFailed as error:
        raise ValidationError(
            {"ownership": f"the DNS look-up failed ({error}); try again later"}
        ) from None
    if domain.verification_token not in (v.strip() for v in values):
        raise ValidationError(
            {"ownership": f"TXT record {name} does not hold the token yet; publish: "
             f"{domain.verification_token}"}
        )  # fmt: skip
    _set_ownership(actor, domain, Ownership.DNS)


def vouch(actor: Actor, domain: Domain) -> None:
    """An operator declares the domain theirs to host, without a DNS proof."""
    if actor.role != "operator":
        raise PermissionError("only operators vouch for a domain")
    _set_ownership(actor, domain, Ownership.OPERATOR)


def _set_ownership(actor: Actor, domain: Domain, ownership: str) -> None:
    before = audit.snapshot(domain)
    domain.ownership, domain.ownership_proven = ownership, timezone.now()
    domain.save(update_fields=["ownership", "ownership_proven"])
    audit.record(actor, "change", domain, reseller_id=domain.reseller_id, before=before,
                 after=audit.snapshot(domain))  # fmt: skip


# Mailboxes ---------------------------------------------------------------------------------


def set_password(mailbox: Mailbox, password: str) -> None:
    """Hash a new password after the strength checks; ValidationError under 'password'."""
    from django.contrib.auth.password_validation import validate_password

    try:
        mailbox.password_hash = hash_password(password)
        validate_password(password)
    except ValidationError as error:
        raise ValidationError({"password": error.messages}) from None
    mailbox.password_changed = timezone.now()


@transaction.atomic
def remove_mailbox(actor: Actor, mailbox: Mailbox) -> RemovedMailbox:
    """Remove a mailbox: from now on no one reaches its mail, which the mail store deletes
    after `MAILPANEL_REMOVED_MAIL_RETENTION_DAYS` (view mail.expired_storage)."""
    before = audit.snapshot(mailbox)
    days = settings.MAILPANEL_REMOVED_MAIL_RETENTION_DAYS
    removed = RemovedMailbox.objects.create(
        address=mailbox.address,
        reseller_name=mailbox.domain.reseller.name,
        storage_id=mailbox.storage_id,
        home=mailbox.home,
        purge_after=timezone.now() + datetime.timedelta(days=days),
    )
    reseller_id = mailbox.domain.reseller_id
    mailbox.delete()
    audit.record(actor, "delete", mailbox, reseller_id=reseller_id, before=before)
    sessions.end_after_commit([removed.address])
    return removed


# Forwardings -------------------------------------------------------------------------------


@transaction.atomic
def save_forwarding(actor: Actor, forwarding: Forwarding, targets: list[str]) -> Forwarding:
    """Store a forwarding with exactly these targets (stored forms, checked), refusing loops."""
    targets = list(dict.fromkeys(check_local_target(t, "targets") for t in targets))
    if not targets:
        raise ValidationError({"targets": "a forwarding needs at least one target"})
    forwarding.address = f"{forwarding.local_part}@{forwarding.domain.name}"
    if forwarding.address in (t.lower() for t in targets):
        raise ValidationError(
            {"targets": f"{forwarding.address} forwards to itself; keep a copy instead"}
        )
    try:
        loops.check_no_loops(forwardings={forwarding.address: targets})
    except ValidationError as error:
        raise ValidationError({"targets": error.messages}) from None
    before = _before(forwarding)
    if before is not None:
        before["targets"] = list(forwarding.targets.values_list("address", flat=True))
    forwarding.full_clean()
    if forwarding.keep_copy:
        _check_keep_copy(forwarding)
    forwarding.save()
    forwarding.targets.all().delete()
    for address in targets:
        target = ForwardingTarget(forwarding=forwarding, address=address)
        target.full_clean(exclude=["forwarding"])
        target.save()
    after = audit.snapshot(forwarding) | {"targets": targets}
    audit.record(actor, "change" if before else "create", forwarding,
                 reseller_id=forwarding.domain.reseller_id, before=before, after=after)  # fmt: skip
    return forwarding


# Signing keys ------------------------------------------------------------------------------


def sync_signing_keys() -> tuple[int, int]:
    """Rewrite the signing store from the account data (after Valkey lost it)."""
    keys = [
        dkimstore.SigningKey(k.domain.name, k.selector, k.private_pem)
        for k in DomainKey.objects.select_related("domain").order_by("domain__name", "created")
    ]
    return dkimstore.sync(keys, keep_domains=operator_domains())
