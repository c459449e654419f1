"""What the account commands share: sub-actions, look-ups by name, errors that name the field."""

import getpass
import os
import sys
from collections.abc import Iterable, Sequence

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, models, transaction

from accounts import dkimstore, operations
from accounts.addresses import parse_address, parse_domain, parse_target
from accounts.audit import COMMAND_LINE
from accounts.models import Domain, Forwarding, Mailbox, Reseller


def field_error(field: str, error: ValidationError | str) -> CommandError:
    messages = error.messages if isinstance(error, ValidationError) else [error]
    return CommandError(f"{field}: {'; '.join(messages)}")


class AccountCommand(BaseCommand):
    """A command with actions (`add`, `list`, `change`, `remove`), each a `do_<action>` method."""

    # call_command(..., stdin=StringIO(...)) feeds passwords in tests.
    stealth_options = ("stdin",)

    def add_arguments(self, parser) -> None:
        self.add_actions(parser.add_subparsers(dest="action", required=True, metavar="ACTION"))

    def add_actions(self, actions) -> None:
        raise NotImplementedError

    def handle(self, *args, action: str, stdin=None, **options) -> None:
        self.stdin = stdin or sys.stdin
        try:
            with transaction.atomic():
                getattr(self, f"do_{action}")(**options)
        except OperationalError as error:
            # No writable database node (a failover, every node down): nothing was changed, and
            # the command may simply be run again; timers count EX_TEMPFAIL as a success
            # (SuccessExitStatus) and their next run does the work.
            reason = next(iter(str(error).strip().splitlines()), "no answer")
            self.stderr.write(f"the account data is unavailable ({reason}); nothing was changed")
            raise SystemExit(os.EX_TEMPFAIL) from None

    @staticmethod
    def add_enabled_switch(parser, *, change: bool) -> None:
        if change:
            group = parser.add_mutually_exclusive_group()
            group.add_argument("--enable", dest="enabled", action="store_true", default=None)
            group.add_argument("--disable", dest="enabled", action="store_false", default=None)
        else:
            parser.add_argument(
                "--disabled", dest="enabled", action="store_false", help="create it disabled"
            )

    def save(self, obj: models.Model) -> None:
        """Validate `obj` completely, then store it (audited); a ValidationError names the field."""
        self.run(operations.save, COMMAND_LINE, obj)

    @staticmethod
    def run(operation, *args, **kwargs):
        """An operation of accounts.operations, its ValidationError as a CommandError."""
        try:
            return operation(*args, **kwargs)
        except dkimstore.SigningStoreError as error:
            raise field_error("dkim", f"{error}; nothing was changed") from None
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                field, errors = next(iter(error.message_dict.items()))
                name = field if field != "__all__" else "value"
                raise field_error(name, "; ".join(errors)) from None
            raise field_error("value", error) from None

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
        """Tab-separated columns under a header line, for people and for `cut`."""
        self.stdout.write("\t".join(headers))
        for row in rows:
            self.stdout.write("\t".join("" if v is None else str(v) for v in row))


def domain_name(value: str) -> str:
    try:
        return parse_domain(value)
    except ValidationError as error:
        raise field_error("domain", error) from None


def address(value: str, field: str = "address") -> tuple[str, str]:
    try:
        return parse_address(value)
    except ValidationError as error:
        raise field_error(field, error) from None


def reseller(name: str) -> Reseller:
    try:
        return Reseller.objects.get(name=name)
    except Reseller.DoesNotExist:
        raise field_error("reseller", f"unknown reseller {name!r}") from None


def domain(name: str) -> Domain:
    stored = domain_name(name)
    try:
        return Domain.objects.get(name=stored)
    except Domain.DoesNotExist:
        raise field_error("domain", f"{stored} is not a domain hosted here") from None


def hosted_address(value: str) -> tuple[str, Domain]:
    """(local part, domain) of an address in a hosted domain."""
    local, name = address(value)
    return local, domain(name)


def _existing(model: type[Mailbox | Forwarding], value: str) -> Mailbox | Forwarding:
    local, dom = hosted_address(value)
    try:
        return model.objects.get(domain=dom, local_part=local)
    except model.DoesNotExist:
        what = model._meta.verbose_name
        raise field_error("address", f"{local}@{dom.name} is not a {what}") from None


def mailbox(value: str) -> Mailbox:
    return _existing(Mailbox, value)


def forwarding(value: str) -> Forwarding:
    return _existing(Forwarding, value)


def target(value: str, field: str) -> str:
    """A destination address; one in a hosted domain must be a mailbox or forwarding here."""
    try:
        stored = parse_target(value)
    except ValidationError as error:
        raise field_error(field, error) from None
    name = stored.rpartition("@")[2]
    if Domain.objects.filter(name=name).exists():
        stored = stored.lower()
        if not (
            Mailbox.objects.filter(address=stored).exists()
            or Forwarding.objects.filter(address=stored).exists()
        ):
            raise field_error(field, f"{stored} is neither a mailbox nor a forwarding here")
    return stored


def read_password(stdin) -> str:
    """The password on standard input: its first line, without the line break.

    At a terminal it is asked for without echo instead.
    """
    if stdin.isatty():
        return getpass.getpass("Password: ")
    line = stdin.readline()
    return line.removesuffix("\n").removesuffix("\r")
