"""The `mailstack` command."""

import argparse
import sys
from pathlib import Path

import yaml

from mailstack.failover import cli as cloud_cli
from mailstack.lab import cli as lab_cli


def _settings_check(args: argparse.Namespace) -> int:
    from mailstack.settings import SettingsError, load_stack_file

    try:
        settings = load_stack_file(args.file)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 1
    print(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False), end="")
    return 0


def _settings_docs(_args: argparse.Namespace) -> int:
    from mailstack.settings import Settings
    from mailstack.settings.docs import render

    print(render(Settings), end="")
    return 0


def _inventory(args: argparse.Namespace, command: str):
    """The inventory contract `--lab`, `--inventory` or `--stack` names, or None (said why)."""
    from mailstack.inventory import Inventory, from_pulumi_stack

    if args.lab:
        from mailstack.lab.lab import Lab

        inventory_file = Lab(args.lab).inventory_file
        if not inventory_file.exists():
            print(
                f"mailstack {command}: lab {args.lab!r} is not up: `mailstack lab up`",
                file=sys.stderr,
            )
            return None
        return Inventory.read(inventory_file)
    if args.inventory:
        return Inventory.read(args.inventory)
    return from_pulumi_stack(args.stack)


def _report(args: argparse.Namespace, command: str, reporter) -> int:
    """Print the report `reporter(inventory)` makes; its exit code, 1 without an inventory."""
    inventory = _inventory(args, command)
    if inventory is None:
        return 1
    code, report = reporter(inventory)
    print(report, end="")
    return code


def _status(args: argparse.Namespace) -> int:
    from mailstack.status import cluster_status

    return _report(args, "status", cluster_status)


def _backup_status(args: argparse.Namespace) -> int:
    from mailstack.backups import backup_status

    return _report(args, "backup status", backup_status)


def _backup_key(args: argparse.Namespace) -> int:
    from mailstack.backups import public_key
    from mailstack.secrets import REPOSITORY
    from mailstack.settings import SettingsError, load_stack_file

    if args.lab:
        inventory = _inventory(args, "backup key")
        if inventory is None:
            return 1
        name = inventory.settings().environment.name
        print(public_key(inventory.stack, inventory.lab_file, name))
        return 0
    try:
        settings = load_stack_file(REPOSITORY / "stacks" / f"Pulumi.{args.stack}.yaml")
    except (SettingsError, OSError) as error:
        print(error, file=sys.stderr)
        return 1
    print(public_key(args.stack, None, settings.environment.name))
    return 0


def _backup_secrets_fetch(args: argparse.Namespace) -> int:
    from mailstack.secretcopy import SecretCopyError, fetch, lab_address
    from mailstack.secrets import REPOSITORY
    from mailstack.settings import SettingsError, load_stack_file

    if args.lab:
        inventory = _inventory(args, "backup secrets fetch")
        if inventory is None:
            return 1
        settings, address = inventory.settings(), lab_address(inventory)
    else:
        address = None
        try:
            settings = load_stack_file(REPOSITORY / "stacks" / f"Pulumi.{args.stack}.yaml")
        except (SettingsError, OSError) as error:
            print(error, file=sys.stderr)
            return 1
    identity = Path(args.identity).expanduser()
    login_key = Path(args.login_key).expanduser() if args.login_key else identity
    try:
        print(fetch(settings, login_key, identity, Path(args.output), address))
    except (SecretCopyError, OSError) as error:
        print(f"mailstack backup secrets fetch: {error}", file=sys.stderr)
        return 1
    return 0


def _environment_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="a Hetzner environment, from its Pulumi stack's output")
    where.add_argument("--lab", help="a running lab, by name")
    where.add_argument("--inventory", help="a saved inventory contract (JSON)")


def _deploy(args: argparse.Namespace) -> int:
    import tempfile

    from mailstack.deploy import runner
    from mailstack.failover.hetzner import TOKEN_VARIABLE
    from mailstack.inventory import failover_token_from_stack, from_pulumi_stack
    from mailstack.settings.plan import cluster_roles

    if args.lab:
        from mailstack.lab.lab import Lab

        inventory_file = Lab(args.lab).inventory_file
        if not inventory_file.exists():
            print(
                f"mailstack deploy: lab {args.lab!r} is not up: `mailstack lab up`", file=sys.stderr
            )
            return 1
        return runner.run(inventory_file, args.limit).returncode
    if args.inventory:
        return runner.run(args.inventory, args.limit).returncode
    inventory = from_pulumi_stack(args.stack)
    environment = {}
    if cluster_roles(inventory.settings()):
        # Handed to the roles in pyinfra's environment only, never written to a file here.
        environment[TOKEN_VARIABLE] = failover_token_from_stack(args.stack)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as saved:
        saved.write(inventory.model_dump_json())
        saved.flush()
        return runner.run(saved.name, args.limit, environment=environment).returncode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    settings = commands.add_parser("settings", help="validate and document settings")
    settings_commands = settings.add_subparsers(dest="settings_command", required=True)
    check = settings_commands.add_parser(
        "check", help="validate a stack file and print the effective settings"
    )
    check.add_argument("file", help="a stack file, e.g. stacks/Pulumi.production.yaml")
    check.set_defaults(func=_settings_check)
    docs = settings_commands.add_parser("docs", help="print the settings reference (Markdown)")
    docs.set_defaults(func=_settings_docs)

    deploy = commands.add_parser(
        "deploy", help="apply every role to an environment's hosts (pyinfra, deploy.py)"
    )
    target = deploy.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help="a Hetzner environment, from its Pulumi stack's output")
    target.add_argument("--lab", help="a running lab, by name")
    target.add_argument("--inventory", help="a saved inventory contract (JSON)")
    deploy.add_argument(
        "--limit", action="append", default=[], help="only this group or host (repeatable)"
    )
    deploy.set_defaults(func=_deploy)

    status = commands.add_parser(
        "status",
        help="the db clusters' state: Patroni and PostgreSQL, etcd, Valkey and Sentinel "
        "(exit 0: every member in place, 1: degraded, 2: no db node answers)",
    )
    _environment_arguments(status)
    status.set_defaults(func=_status)

    backup = commands.add_parser("backup", help="off-site backups (docs/operations.md#backups)")
    backup_commands = backup.add_subparsers(dest="backup_command", required=True)
    backup_state = backup_commands.add_parser(
        "status",
        help="the newest snapshot of each kind of backup and its age (exit 0: within two "
        "intervals, 1: older, 2: none or unreachable)",
    )
    _environment_arguments(backup_state)
    backup_state.set_defaults(func=_backup_status)
    key = backup_commands.add_parser(
        "key", help="print the public key to install on the backup account"
    )
    whose = key.add_mutually_exclusive_group(required=True)
    whose.add_argument(
        "--stack", help="an environment by its stack name (stacks/Pulumi.<name>.yaml)"
    )
    whose.add_argument("--lab", help="a running lab, by name")
    key.set_defaults(func=_backup_key)
    secrets = backup_commands.add_parser(
        "secrets", help="the off-site copy of the environment's secrets (every deploy puts it)"
    )
    secrets_commands = secrets.add_subparsers(dest="secrets_command", required=True)
    fetch = secrets_commands.add_parser(
        "fetch", help="fetch the newest copy and decrypt it with your own key"
    )
    whose = fetch.add_mutually_exclusive_group(required=True)
    whose.add_argument("--stack", help="an environment by its stack name")
    whose.add_argument("--lab", help="a running lab, by name")
    fetch.add_argument(
        "--identity",
        required=True,
        help="your private key the copy is encrypted for (SSH, unencrypted; or an age key file)",
    )
    fetch.add_argument(
        "--login-key",
        help="your SSH key on the backup account (default: --identity)",
    )
    fetch.add_argument("--output", required=True, help="a new file for the secrets (JSON)")
    fetch.set_defaults(func=_backup_secrets_fetch)

    lab_cli.register(commands)
    cloud_cli.register(commands)

    from mailstack.policyd import cli as policyd_cli

    policyd = commands.add_parser(
        "policyd", help="run the policy service (greylisting and the outbound limit)"
    )
    policyd_cli.add_arguments(policyd)
    policyd.set_defaults(func=policyd_cli.run)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
