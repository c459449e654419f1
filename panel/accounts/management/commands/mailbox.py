"""manage.py mailbox add|list|change|remove: mailboxes, their passwords, quotas and limits."""

from accounts import operations
from accounts.audit import COMMAND_LINE
from accounts.management import base
from accounts.management.base import (
    AccountCommand,
    field_error,
    hosted_address,
    mailbox,
    read_password,
)
from accounts.models import Mailbox
from accounts.passwords import generate_password

MIB = 1024 * 1024


class Command(AccountCommand):
    help = "Add, list, change and remove mailboxes."

    def add_actions(self, actions) -> None:
        add = actions.add_parser(
            "add",
            help="add a mailbox; without --password-stdin a password is generated and printed "
            "once on standard output",
        )
        add.add_argument("address")
        add.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input"
        )
        change = actions.add_parser("change", help="change a mailbox")
        change.add_argument("address")
        password = change.add_mutually_exclusive_group()
        password.add_argument(
            "--password-stdin", action="store_true", help="read a new password from standard input"
        )
        password.add_argument(
            "--generate-password", action="store_true",
            help="set a generated password and print it once on standard output",
        )  # fmt: skip
        for parser in (add, change):
            parser.add_argument(
                "--quota-mib", type=int, help="storage quota in MiB, 0 for none (default: "
                "mail.default_quota_mib of the settings)",
            )  # fmt: skip
        # On change each setting can also go back to the platform's default, but not both at once.
        add_limit, change_limit = add, change.add_mutually_exclusive_group()
        add_spam, change_spam = add, change.add_mutually_exclusive_group()
        for limit, spam in ((add_limit, add_spam), (change_limit, change_spam)):
            limit.add_argument(
                "--limit-class", help="outbound limit class (a key of mail.outbound_limit.classes)"
            )
            spam.add_argument(
                "--spam-thresholds", nargs=2, type=float, metavar=("ADD_HEADER", "REJECT"),
                help="this user's spam scores for the spam header and for refusing",
            )  # fmt: skip
        change_limit.add_argument(
            "--default-limit-class", dest="limit_class", action="store_const", const="",
            help="back to the default outbound limit",
        )  # fmt: skip
        change_spam.add_argument(
            "--no-spam-thresholds", dest="spam_thresholds", action="store_const", const=(),
            help="back to the platform's spam thresholds",
        )  # fmt: skip
        self.add_enabled_switch(add, change=False)
        self.add_enabled_switch(change, change=True)

        listing = actions.add_parser("list", help="list mailboxes")
        listing.add_argument("--domain", help="only this domain's mailboxes")
        remove = actions.add_parser(
            "remove",
            help="remove a mailbox (its mail is kept, unreachable, until the retention deadline)",
        )
        remove.add_argument("address")

    def _apply(self, obj: Mailbox, options: dict) -> None:
        quota = options["quota_mib"]
        if quota is not None:
            if quota < 0:
                raise field_error("quota_mib", f"{quota} is negative; 0 means no quota")
            obj.quota_bytes = quota * MIB
        if options["limit_class"] is not None:
            obj.outbound_limit_class = options["limit_class"]
        thresholds = options["spam_thresholds"]
        if thresholds is not None:
            obj.spam_add_header_score, obj.spam_reject_score = thresholds or (None, None)
        if options["enabled"] is not None:
            obj.enabled = options["enabled"]

    def _set_password(self, obj: Mailbox, from_stdin: bool) -> str | None:
        """Set a password read or generated; return it if generated."""
        generated = None if from_stdin else generate_password()
        password = read_password(self.stdin) if from_stdin else generated
        self.run(operations.set_password, obj, password)
        return generated

    def do_add(self, address: str, password_stdin: bool, **options) -> None:
        local, dom = hosted_address(address)
        if Mailbox.objects.filter(domain=dom, local_part=local).exists():
            raise field_error("address", f"mailbox {local}@{dom.name} already exists")
        obj = Mailbox(domain=dom, local_part=local)
        self._apply(obj, options)
        generated = self._set_password(obj, password_stdin)
        self.save(obj)
        self._report(f"added mailbox {obj.address}", generated)

    def do_change(
        self, address: str, password_stdin: bool, generate_password: bool, **options
    ) -> None:
        obj = mailbox(address)
        self._apply(obj, options)
        generated = None
        if password_stdin or generate_password:
            generated = self._set_password(obj, password_stdin)
        self.save(obj)
        self._report(f"changed mailbox {obj.address}", generated)

    def _report(self, what: str, generated: str | None) -> None:
        # The generated password alone on standard output, so scripts can capture it.
        if generated:
            self.stderr.write(f"{what}; its password follows, shown only this once")
            self.stdout.write(generated)
        else:
            self.stdout.write(what)

    def do_list(self, domain: str | None, **_) -> None:
        mailboxes = Mailbox.objects.select_related("domain")
        if domain:
            mailboxes = mailboxes.filter(domain=base.domain(domain))
        self.table(
            ["address", "enabled", "quota_mib", "limit_class", "spam_add_header", "spam_reject"],
            (
                (m.address, m.enabled, m.quota_bytes // MIB, m.outbound_limit_class or "default",
                 m.spam_add_header_score, m.spam_reject_score)
                for m in mailboxes
            ),
        )  # fmt: skip

    def do_remove(self, address: str, **_) -> None:
        obj = mailbox(address)
        removed = operations.remove_mailbox(COMMAND_LINE, obj)
        self.stdout.write(
            f"removed mailbox {obj.address}; its mail is unreachable now and deleted after "
            f"{removed.purge_after:%Y-%m-%d %H:%M} UTC"
        )
