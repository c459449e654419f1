"""manage.py forwarding add|list|change|remove: addresses whose mail goes on to other addresses."""

from accounts import operations
from accounts.audit import COMMAND_LINE
from accounts.management import base
from accounts.management.base import AccountCommand, field_error, forwarding, hosted_address, target
from accounts.models import Forwarding


class Command(AccountCommand):
    help = "Add, list, change and remove forwardings (aliases)."

    def add_actions(self, actions) -> None:
        add = actions.add_parser("add", help="forward an address to one or more targets")
        add.add_argument("address")
        add.add_argument("targets", nargs="+", metavar="TARGET", help="local or external address")
        add.add_argument(
            "--keep-copy", action="store_true",
            help="also deliver to the mailbox of the same address",
        )  # fmt: skip
        self.add_enabled_switch(add, change=False)

        change = actions.add_parser("change", help="change a forwarding")
        change.add_argument("address")
        change.add_argument("--targets", nargs="+", metavar="TARGET", help="replace all targets")
        change.add_argument("--add-target", action="append", default=[], metavar="TARGET")
        change.add_argument("--remove-target", action="append", default=[], metavar="TARGET")
        keep = change.add_mutually_exclusive_group()
        keep.add_argument("--keep-copy", dest="keep_copy", action="store_true", default=None)
        keep.add_argument("--no-keep-copy", dest="keep_copy", action="store_false", default=None)
        self.add_enabled_switch(change, change=True)

        listing = actions.add_parser("list", help="list forwardings")
        listing.add_argument("--domain", help="only this domain's forwardings")
        remove = actions.add_parser("remove", help="remove a forwarding")
        remove.add_argument("address")

    def _store(self, obj: Forwarding, targets: list[str]) -> None:
        if obj.address in targets:
            raise field_error(
                "targets", f"{obj.address} forwards to itself; use --keep-copy instead"
            )
        self.run(operations.save_forwarding, COMMAND_LINE, obj, targets)

    def do_add(self, address: str, targets: list[str], keep_copy: bool, enabled: bool, **_) -> None:
        local, dom = hosted_address(address)
        obj = Forwarding(domain=dom, local_part=local, keep_copy=keep_copy, enabled=enabled)
        obj.address = f"{local}@{dom.name}"
        if Forwarding.objects.filter(address=obj.address).exists():
            raise field_error("address", f"forwarding {obj.address} already exists")
        stored = _unique(target(t, "targets") for t in targets)
        self._store(obj, stored)
        self.stdout.write(f"added forwarding {obj.address} -> {', '.join(stored)}")

    def do_change(
        self,
        address: str,
        targets: list[str] | None,
        add_target: list[str],
        remove_target: list[str],
        keep_copy: bool | None,
        enabled: bool | None,
        **_,
    ) -> None:
        obj = forwarding(address)
        current = list(obj.targets.values_list("address", flat=True))
        if targets is not None:
            current = [target(t, "targets") for t in targets]
        for value in remove_target:
            matches = [t for t in current if t.lower() == value.strip().lower()]
            if not matches:
                raise field_error("remove_target", f"{value} is not a target of {obj.address}")
            current.remove(matches[0])
        current += [target(t, "add_target") for t in add_target]
        if keep_copy is not None:
            obj.keep_copy = keep_copy
        if enabled is not None:
            obj.enabled = enabled
        stored = _unique(current)
        self._store(obj, stored)
        self.stdout.write(f"changed forwarding {obj.address} -> {', '.join(stored)}")

    def do_list(self, domain: str | None, **_) -> None:
        forwardings = Forwarding.objects.prefetch_related("targets")
        if domain:
            forwardings = forwardings.filter(domain=base.domain(domain))
        self.table(
            ["address", "enabled", "keep_copy", "targets"],
            (
                (f.address, f.enabled, f.keep_copy, ",".join(t.address for t in f.targets.all()))
                for f in forwardings
            ),
        )

    def do_remove(self, address: str, **_) -> None:
        obj = forwarding(address)
        self.run(operations.delete, COMMAND_LINE, obj)
        self.stdout.write(f"removed forwarding {obj.address}")


def _unique(addresses) -> list[str]:
    return list(dict.fromkeys(addresses))
