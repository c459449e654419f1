"""manage.py hold list|release|notify: sending holds the policy service put on mailboxes."""

from accounts.audit import COMMAND_LINE
from accounts.holdnotices import send_due
from accounts.holds import SendingHold
from accounts.management import base
from accounts.management.base import AccountCommand, field_error
from accounts.operations import delete


class Command(AccountCommand):
    help = "Held mailboxes: list them, release one (audited), send the notices that are due."

    def add_actions(self, actions) -> None:
        actions.add_parser("list", help="every held mailbox, why and since when")
        release = actions.add_parser("release", help="let a mailbox send again")
        release.add_argument("address")
        actions.add_parser("notify", help="send the notices of new holds (run by a timer)")

    def do_list(self, **_) -> None:
        self.table(
            ["address", "reason", "held", "count", "notified"],
            ((h.mailbox.address, h.reason, f"{h.held_at:%Y-%m-%d %H:%M:%S}",
              str(h.evidence.get("count", "")),
              f"{h.notified_at:%Y-%m-%d %H:%M:%S}" if h.notified_at else "-")
             for h in SendingHold.objects.select_related("mailbox")),
        )  # fmt: skip

    def do_release(self, address: str, **_) -> None:
        mailbox = base.mailbox(address)
        hold = SendingHold.objects.filter(mailbox=mailbox).first()
        if hold is None:
            raise field_error("address", f"{mailbox.address} is not on hold")
        self.run(delete, COMMAND_LINE, hold)
        self.stdout.write(f"released {mailbox.address}")

    def do_notify(self, **_) -> None:
        sent = send_due()
        if sent:
            self.stdout.write(f"sent {sent} notice(s)")
