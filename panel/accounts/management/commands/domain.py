"""manage.py domain add|list|change|remove: hosted mail domains and their catch-all."""

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
        self.add_enabled_switch(add, change=False)

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
            help="also remove its mailboxes and forwardings (stored mail stays on disk)",
        )  # fmt: skip

    def do_add(self, name: str, reseller: str, catch_all: str | None, enabled: bool, **_) -> None:
        stored = domain_name(name)
        if Domain.objects.filter(name=stored).exists():
            raise field_error("domain", f"{stored} is already hosted")
        owner = base.reseller(reseller)
        obj = Domain(name=stored, reseller=owner, enabled=enabled)
        obj.save()
        if catch_all:
            # The catch-all may be an address of the new domain itself, checked once it exists.
            obj.catch_all = target(catch_all, "catch_all")
        self.save(obj)
        self.stdout.write(f"added domain {obj.name}")

    def do_list(self, reseller: str | None, **_) -> None:
        domains = Domain.objects.select_related("reseller")
        if reseller:
            domains = domains.filter(reseller=base.reseller(reseller))
        self.table(
            ["domain", "reseller", "enabled", "mailboxes", "forwardings", "catch_all"],
            (
                (d.name, d.reseller.name, d.enabled, d.mailboxes.count(), d.forwardings.count(),
                 d.catch_all)
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
        mailboxes, forwardings = obj.mailboxes.count(), obj.forwardings.count()
        if (mailboxes or forwardings) and not force:
            raise field_error(
                "domain",
                f"{obj.name} still has {mailboxes} mailbox(es) and {forwardings} forwarding(s); "
                "remove them first or use --force",
            )
        obj.forwardings.all().delete()
        obj.mailboxes.all().delete()
        obj.delete()
        self.stdout.write(f"removed domain {obj.name}")
