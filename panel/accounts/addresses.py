"""Parsing of domain names and mail addresses as the account data stores them.

Domains are stored lower-case in their ASCII (IDNA) form, local parts lower-case. Local parts
are restricted to letters, digits, '.', '_' and '-': '+' is Postfix's recipient delimiter
(`alice+tag@` reaches `alice@`), and quoted or otherwise exotic local parts are refused.
"""

import re

from django.core.exceptions import ValidationError
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from mailstack.settings.base import FQDN

_FQDN = TypeAdapter(FQDN)
LOCAL_PART = re.compile(r"^[a-z0-9](?:[a-z0-9_-]|\.(?!\.)){0,62}(?<!\.)$")


def parse_domain(value: str) -> str:
    """A domain name in stored form, or ValidationError."""
    text = value.strip().rstrip(".").lower()
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValidationError(f"{value!r} is not a valid domain name") from None
    try:
        return _FQDN.validate_python(text)
    except PydanticValidationError:
        raise ValidationError(f"{value!r} is not a fully qualified domain name") from None


def check_local_part(value: str) -> None:
    """Raise ValidationError unless `value` is a local part the platform hosts."""
    if not LOCAL_PART.match(value):
        raise ValidationError(
            f"{value!r} is not a valid local part (1-64 of a-z 0-9 . _ -, starting and ending "
            "with a letter or digit, no '..')"
        )


def parse_address(value: str) -> tuple[str, str]:
    """(local part, domain) of a hosted address in stored form, or ValidationError."""
    local, at, domain = value.strip().rpartition("@")
    if not at or not local:
        raise ValidationError(f"{value!r} is not a valid e-mail address")
    local = local.lower()
    check_local_part(local)
    return local, parse_domain(domain)


def parse_target(value: str) -> str:
    """A forwarding target (a local or external address) in stored form, or ValidationError.

    External addresses keep the case of their local part, which only the receiving domain may
    interpret; they may use '+' and other atext characters.
    """
    local, at, domain = value.strip().rpartition("@")
    if (
        not at
        or not re.fullmatch(
            r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*", local
        )
        or len(local) > 64
    ):
        raise ValidationError(f"{value!r} is not a valid e-mail address")
    return f"{local}@{parse_domain(domain)}"
