"""Checks recorded resource inputs against the argument types pulumi-hcloud declares.

The mock runtime accepts anything; Hetzner does not. Every input the program sends must have
the type the provider's *Args class declares (e.g. Server.placement_group_id is an int while
LoadBalancerService.load_balancer_id is a string), recursively through nested argument types.
"""

import collections.abc
import importlib
import inspect
import re
import typing

import pulumi_hcloud as hcloud


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _plain(annotation) -> object:
    """The declared value type with Optional/Awaitable/Output wrappers removed."""
    if isinstance(annotation, typing.ForwardRef):
        name = annotation.__forward_arg__
        return None if name.startswith("Output") else getattr(hcloud, name)
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        candidates = [
            _plain(arg)
            for arg in typing.get_args(annotation)
            if arg is not type(None) and typing.get_origin(arg) is not collections.abc.Awaitable
        ]
        candidates = [c for c in candidates if c is not None]
        return candidates[0]
    return annotation


def args_class(resource_type: str):
    """The resource's own *Args class (its module's: some names also exist as nested types)."""
    module_token, short = resource_type.split(":")[1:]
    module = importlib.import_module(f"pulumi_hcloud.{snake(module_token.split('/')[1])}")
    # Where a nested type took the plain name, the resource's class is called *InitArgs.
    return getattr(module, f"{short}InitArgs", None) or getattr(module, f"{short}Args")


def type_errors(value, declared, path: str) -> list[str]:
    declared = _plain(declared)
    origin = typing.get_origin(declared)
    if origin in (collections.abc.Sequence, list):
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {value!r}"]
        (item_type,) = typing.get_args(declared)
        errors = []
        for index, item in enumerate(value):
            errors += type_errors(item, item_type, f"{path}[{index}]")
        return errors
    if origin in (collections.abc.Mapping, dict):
        return [] if isinstance(value, dict) else [f"{path}: expected a mapping, got {value!r}"]
    if inspect.isclass(declared) and declared.__name__.endswith("Args"):
        if not isinstance(value, dict):
            return [f"{path}: expected {declared.__name__}, got {value!r}"]
        return check_arguments(declared, value, path)
    if declared is bool:
        ok = isinstance(value, bool)
    elif declared is int:
        # Numbers cross the mock runtime as floats; an int argument must be integral.
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value)
    elif declared is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif declared is str:
        ok = isinstance(value, str)
    else:
        return [f"{path}: undeclared type {declared!r}"]
    return [] if ok else [f"{path}: expected {declared.__name__}, got {value!r}"]


def check_arguments(cls, inputs: dict, path: str) -> list[str]:
    parameters = inspect.signature(cls.__init__).parameters
    errors = []
    for key, value in inputs.items():
        name = snake(key)
        if name not in parameters:
            errors.append(f"{path}.{name}: not an argument of {cls.__name__}")
            continue
        errors += type_errors(value, parameters[name].annotation, f"{path}.{name}")
    return errors
