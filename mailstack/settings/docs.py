"""Generates docs/settings.md from the models, so the reference never drifts from the code."""

import json
import types
import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

HEADER = """# Settings reference

Generated from the models in `mailstack/settings/` by `make docs`; a test fails when this file
is stale. Every environment is one stack file, `stacks/Pulumi.<env>.yaml`, whose
`config: mailstack:settings:` holds the tree below; write only what differs from the defaults.
Check a file with `mailstack settings check stacks/Pulumi.<env>.yaml`.
"""


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return " / ".join(repr(arg) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        return _validated_name(meta) or _type_name(base)
    if origin in (list, dict):
        args = ", ".join(_type_name(arg) for arg in typing.get_args(annotation))
        return f"{origin.__name__}[{args}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _validated_name(metadata) -> str | None:
    """'domain name' or 'name' for the FQDN and Slug types of mailstack.settings.base."""
    for item in metadata:
        func = getattr(item, "func", None)
        if func is not None and func.__name__ == "_check_fqdn":
            return "domain name"
        if func is not None and func.__name__ == "_check_slug":
            return "name"
    return None


def _field_type(field) -> str:
    name = _type_name(field.annotation)
    return _validated_name(field.metadata) or name


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        value = [item.model_dump(mode="json") for item in value]
    elif isinstance(value, dict):
        value = {
            key: item.model_dump(mode="json") if isinstance(item, BaseModel) else item
            for key, item in value.items()
        }
    return "`" + json.dumps(value, default=str) + "`"


def _nested_models(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found += _nested_models(arg)
    return found


def render(root: type[BaseModel]) -> str:
    sections: list[str] = [HEADER]
    queue: list[tuple[str, type[BaseModel]]] = [("", root)]
    done: set[str] = set()
    while queue:
        path, model = queue.pop(0)
        if path in done:
            continue
        done.add(path)
        title = f"`{path}`" if path else "Top level"
        doc = (model.__doc__ or "").strip().splitlines()[0]
        rows = ["| field | type | default | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            rows.append(
                f"| `{name}` | {_field_type(field)} | {_default(field)} | {field.description} |"
            )
            for nested in _nested_models(field.annotation):
                child = f"{path}.{name}" if path else name
                if typing.get_origin(field.annotation) is dict:
                    child += ".<name>"
                elif typing.get_origin(field.annotation) is list:
                    child += "[]"
                queue.append((child, nested))
        sections.append(f"## {title}\n\n{doc}\n\n" + "\n".join(rows) + "\n")
    return "\n".join(sections)
