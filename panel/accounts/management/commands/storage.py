"""manage.py storage list|expired: removed mailboxes' mail, kept unreachable until deleted."""

from django.utils import timezone

from accounts.lifecycle import RemovedMailbox
from accounts.management.base import AccountCommand


class Command(AccountCommand):
    help = "Removed mailboxes' stored mail and its deletion deadlines."

    def add_actions(self, actions) -> None:
        actions.add_parser("list", help="every removed mailbox's home and deadline")
        actions.add_parser(
            "expired", help="homes past their deadline (what mail.expired_storage shows)"
        )

    def _rows(self, removed):
        self.table(
            ["address", "reseller", "home", "removed", "purge_after"],
            ((r.address, r.reseller_name, r.home, f"{r.removed:%Y-%m-%d %H:%M}",
              f"{r.purge_after:%Y-%m-%d %H:%M}") for r in removed),
        )  # fmt: skip

    def do_list(self, **_) -> None:
        self._rows(RemovedMailbox.objects.all())

    def do_expired(self, **_) -> None:
        self._rows(RemovedMailbox.objects.filter(purge_after__lte=timezone.now()))
