"""`mailstack lab ...`: bring a lab up, look at it, log in, take it down."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

from mailstack.lab.lab import REPOSITORY, Lab
from mailstack.lab.system import LabError
from mailstack.settings import SettingsError


def deploy(lab: Lab) -> None:
    """Apply every role to the lab's hosts with pyinfra (deploy.py, by inventory group)."""
    pyinfra = Path(sys.executable).with_name("pyinfra")
    result = subprocess.run(
        [str(pyinfra), "-y", "inventory/lab.py", "deploy.py"],
        cwd=REPOSITORY,
        env={**os.environ, "MAILSTACK_LAB": lab.name},
    )
    if result.returncode != 0:
        raise LabError(f"pyinfra deploy on lab {lab.name} failed (exit {result.returncode})")


def endpoints(lab: Lab) -> list[str]:
    """Where the platform answers in the lab, as a user would point a client at it."""
    inventory = lab.inventory()
    settings = inventory.settings()
    state = lab.state()
    lb = {balancer.purpose: balancer.private_ip for balancer in inventory.load_balancers}
    env = settings.environment
    services = state.lab.services_domain
    return [
        f"SMTP        {env.hostname('mx')} ({lb['smtp']}) ports 25, 465, 587",
        f"IMAP/POP3   {env.hostname('mail')} ({lb['mailaccess']}) ports 143, 993, 110, 995",
        f"panel       https://{env.hostname('panel')}/ ({lb['http']})",
        f"webmail     https://{env.hostname('webmail')}/ ({lb['http']})",
        f"DNS         ns.{services} ({state.internet_address}) port 53: "
        f"{', '.join(env.mail_domains)}, {state.lab.peer_domain}, {state.lab.dnsbl_zone}",
        f"ACME        {settings.tls.acme.directory_url if settings.tls.acme else '-'}",
        f"peer MTA    mx.{state.lab.peer_domain} ({state.internet_address}); "
        f"DNSBL-listed source {state.listed_address}",
        f"log in      mailstack lab --name {lab.name} ssh HOST   (inventory: {lab.inventory_file})",
    ]


def _up(lab: Lab, args: argparse.Namespace) -> int:
    inventory = lab.up()
    print(f"lab {lab.name}: {len(inventory.hosts)} hosts up on {lab.bridge}")
    if args.deploy:
        deploy(lab)
        print("\n".join(endpoints(lab)))
    return 0


def _status(lab: Lab, _args: argparse.Namespace) -> int:
    rows = lab.status()
    columns = ("host", "roles", "addresses", "link", "system", "memory_mib")
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
    return 0


def _ssh(lab: Lab, args: argparse.Namespace) -> int:
    host = lab.host(args.host)
    command = lab.ssh_command(host, *args.command)
    if sys.stdin.isatty() and not args.command:
        command.insert(1, "-t")
    os.execvp(command[0], command)


def _down(lab: Lab, _args: argparse.Namespace) -> int:
    lab.down()
    left = lab.leftovers()
    if left:
        print(f"lab {lab.name}: left behind: {'; '.join(left)}", file=sys.stderr)
        return 1
    print(f"lab {lab.name}: removed")
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        lab = Lab(args.name, args.stack_file, log=lambda message: print(message, file=sys.stderr))
        return args.lab_func(lab, args)
    except (LabError, SettingsError) as error:
        print(f"mailstack lab: {error}", file=sys.stderr)
        return 1


def register(commands) -> None:
    """Add `lab` and its subcommands to the `mailstack` command."""
    lab = commands.add_parser("lab", help="local lab hosts (systemd-nspawn) for the platform")
    lab.add_argument(
        "--name", default=None, help="which lab (default: the stack's default_name, 'mailstack')"
    )
    lab.add_argument(
        "--stack-file", default=None, help="lab stack file (default: stacks/Pulumi.lab.yaml)"
    )
    lab.set_defaults(func=_run)
    sub = lab.add_subparsers(dest="lab_command", required=True)
    up = sub.add_parser("up", help="create what is missing, start what is stopped")
    up.add_argument("--deploy", action="store_true", help="then deploy every role with pyinfra")
    up.set_defaults(lab_func=_up)
    sub.add_parser("status", help="hosts, addresses, state, memory").set_defaults(lab_func=_status)
    ssh = sub.add_parser("ssh", help="log in to a host, or run a command there")
    ssh.add_argument("host", help="host name, e.g. lab-mx1 or mx1")
    ssh.add_argument("command", nargs=argparse.REMAINDER, help="command to run")
    ssh.set_defaults(lab_func=_ssh)
    sub.add_parser("down", help="remove everything the lab created").set_defaults(lab_func=_down)
