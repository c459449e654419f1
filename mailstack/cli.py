"""The `mailstack` command."""

import argparse
import sys

import yaml

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

    lab_cli.register(commands)

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
