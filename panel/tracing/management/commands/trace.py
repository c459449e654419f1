"""manage.py trace search|purge: the message trace on the command line (the panel's Trace page
shows the same, scoped)."""

from datetime import timedelta

from django.utils import timezone

from accounts.management.base import AccountCommand
from tracing import retention
from tracing.search import Criteria, search


class Command(AccountCommand):
    help = "Message tracing: find every hop of messages; delete lines past their retention."

    def add_actions(self, actions) -> None:
        find = actions.add_parser("search", help="messages with a line that matches, every hop")
        find.add_argument("--sender", default="", help="envelope sender (case ignored)")
        find.add_argument("--recipient", default="", help="envelope recipient (case ignored)")
        find.add_argument("--message-id", default="", help="the Message-ID header's value")
        find.add_argument("--queue-id", default="", help="a Postfix queue id")
        find.add_argument(
            "--hours", type=float, default=24.0, help="how far back to look (default 24)"
        )
        actions.add_parser("purge", help="delete lines past tracing.retention_days (a timer)")

    def do_search(self, sender, recipient, message_id, queue_id, hours, **_) -> None:
        criteria = Criteria(
            sender=sender,
            recipient=recipient,
            message_id=message_id,
            queue_id=queue_id,
            since=timezone.now() - timedelta(hours=hours),
        )
        for trace in search(criteria, domains=None):
            self.stdout.write(
                f"# {trace.first_at:%Y-%m-%d %H:%M:%S} from {', '.join(trace.senders) or '-'}"
                f" to {', '.join(trace.recipients) or '-'}: {trace.outcome}"
            )
            self.table(
                ["time", "host", "program", "line"],
                ((f"{e.logged_at:%Y-%m-%d %H:%M:%S.%f}", e.host, e.program, e.text)
                 for e in trace.events),
            )  # fmt: skip

    def do_purge(self, **_) -> None:
        deleted = retention.purge()
        if deleted:
            self.stdout.write(f"deleted {deleted} trace line(s) past their retention")
