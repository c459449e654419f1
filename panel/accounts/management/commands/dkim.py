"""manage.py dkim list|sync: customer domains' DKIM keys and the signing store rspamd reads."""

from accounts import dkimstore, operations
from accounts.lifecycle import DomainKey
from accounts.management.base import AccountCommand, field_error


class Command(AccountCommand):
    help = "List DKIM keys of hosted domains; rewrite the signing store (Valkey) from them."

    def add_actions(self, actions) -> None:
        actions.add_parser("list", help="domains, selectors and the DNS record of each key")
        actions.add_parser(
            "sync", help="write every key into the signing store and drop removed domains' keys"
        )

    def do_list(self, **_) -> None:
        from mailstack.dkim import DkimKey

        self.table(
            ["domain", "selector", "created", "record"],
            (
                (k.domain.name, k.selector, f"{k.created:%Y-%m-%d}",
                 DkimKey(k.domain.name, k.selector, k.private_pem).record_text)
                for k in DomainKey.objects.select_related("domain")
            ),
        )  # fmt: skip

    def do_sync(self, **_) -> None:
        try:
            written, removed = operations.sync_signing_keys()
        except dkimstore.SigningStoreError as error:
            raise field_error("signing store", str(error)) from None
        self.stdout.write(f"signing store: keys of {written} domains written, {removed} removed")
