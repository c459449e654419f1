"""manage.py domain add|list|change|remove|verify|vouch: hosted mail domains, their catch-all
and the proof of their ownership."""

from accounts import dkimstore, dnscheck, operations
from accounts.audit import COMMAND_LINE
from accounts.management import base
from accounts.management.base import AccountCommand, domain, domain_name, field_error, target
from accounts.models import Domain


class Command(AccountCommand):
    help = "Add, list, change and remove hosted mail domains."

    def add_actions(self, actions) -> None:
        add = actions.add_parser("add", help="host a new domain")
        add.add_argument("name", help="the domain name (IDN allowed)")
        add.add_argument("--reseller", required=True, help="the reseller that owns it")
        add.add_argument("--catch-all", help="address receiving mail to unknown addresses")
        add.add_argument(
            "--require-proof", action="store_true",
            help="take no mail until its owner proves control with a DNS TXT record "
            "(`domain verify`); without it the operator vouches for the domain",
        )  # fmt: skip
        self.add_enabled_switch(add, change=False)
        verify = actions.add_parser(
            "verify", help="check the ownership proof (TXT _mailstack-challenge.<domain>)"
        )
        verify.add_argument("name")
        vouch = actions.add_parser("vouch", help="vouch for a domain as the operator: it goes live")
        vouch.add_argument("name")

        listing = actions.add_parser("list", help="list domains")
        listing.add_argument("--reseller", help="only this reseller's domains")

        change = actions.add_parser("change", help="change a domain")
        change.add_argument("name")
        change.add_argument("--reseller", help="give the domain to another reseller")
        catch_all = change.add_mutually_exclusive_group()
        catch_all.add_argument("--catch-all", help="address receiving mail to unknown addresses")
        catch_all.add_argument(
            "--no-catch-all", dest="catch_all", action="store_const", const="",
            help="reject mail to unknown addresses again",
        )  # fmt: skip
        self.add_enabled_switch(change, change=True)

        remove = actions.add_parser("remove", help="stop hosting a domain")
        remove.add_argument("name")
        remove.add_argument(
            "--force", action="store_true",
            help="also remove its mailboxes and forwardings (their mail is kept until the "
            "retention deadline, unreachable)",
        )  # fmt: skip

    def do_add(
        self,
        name: str,
        reseller: str,
        catch_all: str | None,
        enabled: bool,
        require_proof: bool,
        **_,
    ) -> None:
        stored = domain_name(name)
        if Domain.objects.filter(name=stored).exists():
            raise field_error("domain", f"{stored} is already hosted")
        owner = base.reseller(reseller)
        # The catch-all may be an address of the new domain itself, checked once it exists.
        obj = Domain(name=stored, reseller=owner, enabled=enabled, catch_all=catch_all or "")
        self.run(operations.create_domain, COMMAND_LINE, obj, vouched=not require_proof)
        self.stdout.write(f"added domain {obj.name}")
        if require_proof:
            self.stderr.write(
                f"it takes mail once TXT {dnscheck.challenge_name(obj.name)} holds "
                f"{obj.verification_token} and `domain verify {obj.name}` has checked it"
            )
        if obj.keys.exists() and not dkimstore.configured():
            self.stderr.write(
                "MAILPANEL_VALKEY_URL is not set: its DKIM key is kept, but rspamd gets it only "
                "from `dkim sync` once the store is configured"
            )

    def do_verify(self, name: str, **_) -> None:
        obj = domain(name)
        self.run(operations.prove_ownership, COMMAND_LINE, obj)
        self.stdout.write(f"domain {obj.name}: ownership proven, it takes mail now")

    def do_vouch(self, name: str, **_) -> None:
        obj = domain(name)
        operations.vouch(COMMAND_LINE, obj)
        self.stdout.write(f"domain {obj.name}: vouched for by the operator, it takes mail now")

    def do_list(self, reseller: str | None, **_) -> None:
        domains = Domain.objects.select_related("reseller")
        if reseller:
            domains = domains.filter(reseller=base.reseller(reseller))
        self.table(
            ["domain", "reseller", "enabled", "mailboxes", "forwardings", "catch_all",
             "ownership"],
            (
                (d.name, d.reseller.name, d.enabled, d.mailboxes.count(), d.forwardings.count(),
                 d.catch_all, d.ownership)
                for d in domains
            ),
        )  # fmt: skip

    def do_change(
        self, name: str, reseller: str | None, catch_all: str | None, enabled: bool | None, **_
    ) -> None:
        obj = domain(name)
        if reseller is not None:
            obj.reseller = base.reseller(reseller)
        if catch_all is not None:
            obj.catch_all = target(catch_all, "catch_all") if catch_all else ""
        if enabled is not None:
            obj.enabled = enabled
        self.save(obj)
        self.stdout.write(f"changed domain {obj.name}")

    def do_remove(self, name: str, force: bool, **_) -> None:
        obj = domain(name)
        try:
            warnings = operations.remove_domain(COMMAND_LINE, obj, force=force)
        except operations.ValidationError as error:
            raise field_error("domain", "; ".join(error.messages)) from None
        self.stdout.write(f"removed domain {obj.name}")
        for warning in warnings:
            self.stderr.write(warning)
