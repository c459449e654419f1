"""manage.py reseller add|list|change|remove: resellers and their white-label branding."""

from accounts import operations
from accounts.audit import COMMAND_LINE
from accounts.management.base import AccountCommand, field_error, reseller
from accounts.models import Reseller

BRANDING = {
    "brand_name": "name shown in panel and webmail (default: the reseller's name)",
    "logo_url": "URL of the logo",
    "primary_colour": "main colour, #rrggbb",
    "secondary_colour": "second colour, #rrggbb",
    "panel_hostname": "own host name of the control panel ('' clears it)",
    "webmail_hostname": "own host name of webmail ('' clears it)",
}


class Command(AccountCommand):
    help = "Add, list, change and remove resellers."

    def add_actions(self, actions) -> None:
        add = actions.add_parser("add", help="add a reseller")
        add.add_argument("name", help="short unique name (letters, digits, '-', '_')")
        change = actions.add_parser("change", help="change a reseller's branding or state")
        change.add_argument("name")
        for parser in (add, change):
            for field, text in BRANDING.items():
                parser.add_argument(f"--{field.replace('_', '-')}", dest=field, help=text)
        self.add_enabled_switch(add, change=False)
        self.add_enabled_switch(change, change=True)
        actions.add_parser("list", help="list resellers")
        remove = actions.add_parser("remove", help="remove a reseller that owns no domains")
        remove.add_argument("name")

    def _apply(self, obj: Reseller, options: dict) -> None:
        for field in BRANDING:
            value = options[field]
            if value is not None:
                if field.endswith("_hostname"):
                    value = value.strip().lower() or None
                elif field.endswith("_colour"):
                    value = value.strip().lower()
                setattr(obj, field, value)
        if options["enabled"] is not None:
            obj.enabled = options["enabled"]

    def do_add(self, name: str, **options) -> None:
        if Reseller.objects.filter(name=name).exists():
            raise field_error("name", f"reseller {name!r} already exists")
        obj = Reseller(name=name, brand_name=name)
        self._apply(obj, options)
        self.save(obj)
        self.stdout.write(f"added reseller {obj.name}")

    def do_change(self, name: str, **options) -> None:
        obj = reseller(name)
        self._apply(obj, options)
        self.save(obj)
        self.stdout.write(f"changed reseller {obj.name}")

    def do_list(self, **options) -> None:
        self.table(
            ["name", "enabled", "domains", "brand_name", "panel_hostname", "webmail_hostname"],
            (
                (r.name, r.enabled, r.domains.count(), r.brand_name, r.panel_hostname,
                 r.webmail_hostname)
                for r in Reseller.objects.all()
            ),
        )  # fmt: skip

    def do_remove(self, name: str, **options) -> None:
        obj = reseller(name)
        self.run(operations.delete, COMMAND_LINE, obj)
        self.stdout.write(f"removed reseller {name}")
