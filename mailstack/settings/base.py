"""Shared building blocks for the settings models."""

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _check_fqdn(value: str) -> str:
    name = value.rstrip(".").lower()
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{value!r} is not a fully qualified domain name")
    if labels[-1].isdigit():
        raise ValueError(f"{value!r} is not a fully qualified domain name (numeric top label)")
    return name


def _check_slug(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}[a-z0-9]", value):
        raise ValueError(
            f"{value!r} must be 2-32 characters of lower-case letters, digits and '-', "
            "starting with a letter"
        )
    return value


FQDN = Annotated[str, AfterValidator(_check_fqdn)]
"""A fully qualified domain name, stored lower-case without the trailing dot."""

Slug = Annotated[str, AfterValidator(_check_slug)]
"""A short lower-case name usable in host names and labels."""


class Model(BaseModel):
    """Base for every settings model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
