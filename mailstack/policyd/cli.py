"""`mailstack policyd`: run the policy service."""

import argparse
import asyncio
import logging
import signal
import sys

import uvloop
from pydantic import ValidationError

from mailstack.jobs import log_to_stderr
from mailstack.policyd.config import PolicydConfig, load_config
from mailstack.settings.stackfile import SettingsError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="JSON configuration file (as the deploy renders it)")
    parser.add_argument(
        "--stack", help="take the policies from a stack file, e.g. stacks/Pulumi.production.yaml"
    )
    parser.add_argument("--listen", help="HOST:PORT for the policy protocol")
    parser.add_argument("--valkey", help="Valkey URL, e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--metrics", help="HOST:PORT for the metrics endpoint")
    parser.add_argument("--greylist-delay", type=int, help="greylisting delay in seconds")
    parser.add_argument(
        "--outbound-limit", help="default outbound limit as RECIPIENTS/SECONDS, e.g. 60/300"
    )
    parser.add_argument("--on-store-failure", choices=["defer", "allow"])
    parser.add_argument(
        "--trusted", action="append", help="trusted network (repeatable); replaces the list"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING")
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration, print what is wrong and exit (0: valid)",
    )


def build_config(args: argparse.Namespace) -> PolicydConfig:
    config = load_config(args.config) if args.config else PolicydConfig()
    data = config.model_dump(mode="json")
    if args.stack:
        from mailstack.settings import load_stack_file

        settings = load_stack_file(args.stack)
        data["greylisting"] = settings.mail.greylisting.model_dump(mode="json")
        data["outbound_limit"] = settings.mail.outbound_limit.model_dump(mode="json")
        data["service"] = settings.mail.policy_service.model_dump(mode="json")
        data["trusted_networks"] = ["127.0.0.0/8", "::1/128", str(settings.network.ip_range)]
    if args.listen:
        data["listen"] = args.listen
    if args.valkey:
        data["valkey_url"] = args.valkey
    if args.metrics:
        data["metrics_listen"] = args.metrics
    if args.greylist_delay is not None:
        data["greylisting"]["delay_seconds"] = args.greylist_delay
    if args.outbound_limit:
        recipients, _, seconds = args.outbound_limit.partition("/")
        data["outbound_limit"]["default"] = {"recipients": recipients, "window_seconds": seconds}
    if args.on_store_failure:
        data["outbound_limit"]["on_store_failure"] = args.on_store_failure
    if args.trusted:
        data["trusted_networks"] = args.trusted
    try:
        return PolicydConfig.model_validate(data)
    except ValidationError as error:
        problems = [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in error.errors()]
        raise SettingsError("policyd options", problems) from None


async def _serve(config: PolicydConfig) -> None:
    from mailstack.policyd.server import PolicyServer

    server = PolicyServer(config)
    task = asyncio.ensure_future(server.serve_forever())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        logging.getLogger("mailstack.policyd").info("policyd: stopped")


def run(args: argparse.Namespace) -> int:
    log_to_stderr(args.log_level.upper(), "%(levelname)s %(message)s")
    try:
        config = build_config(args)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    if args.check_config:
        return 0
    try:
        # uvloop's event loop does the service's network I/O at a third of asyncio's cost.
        uvloop.run(_serve(config))
    except OSError as error:
        print(f"policyd: cannot listen on {config.listen}: {error}", file=sys.stderr)
        return 1
    return 0
