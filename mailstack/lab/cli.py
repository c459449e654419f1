"""`mailstack lab ...`: bring a lab up, look at it, log in, take it down."""

import argparse
import os
import subprocess
import sys

from mailstack.lab import report
from mailstack.lab.lab import Lab
from mailstack.lab.system import LabError
from mailstack.settings import SettingsError


def deploy(lab: Lab) -> None:
    """Apply every role to the lab's hosts (mailstack.deploy.runner)."""
    from mailstack.deploy import runner

    if runner.run(lab.inventory_file).returncode != 0:
        raise LabError(f"the deploy of lab {lab.name} failed (pyinfra's output above)")


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


TEST_RESELLER = "lab"
TEST_LOCAL_PART = "test"
TEST_ACCOUNT_SECRET = "test_account_password"
OPERATOR_ACCOUNT_SECRET = "operator_account_password"


def lab_accounts(settings, secrets) -> list[tuple[str, str, str]]:
    """(what, address, password) of the mailboxes `lab up --deploy` makes: the test account
    (test@<first domain>) and the operators' alert addresses (monitoring.notifications.email_to)
    in the platform's own domains, so alert mail is delivered and can be read, not bounced.
    `settings`: the lab's Settings; `secrets`: its SecretStore, which keeps the passwords so
    every `lab up --deploy` prints the same ones (read before the deploy, whose off-site copy of
    the secrets then holds them)."""
    environment = settings.environment
    accounts = [
        (
            "test account",
            f"{TEST_LOCAL_PART}@{environment.primary_domain}",
            secrets.get(TEST_ACCOUNT_SECRET),
        )
    ]
    for address in settings.monitoring.notifications.email_to:
        if str(address).rpartition("@")[2] in environment.mail_domains:
            accounts.append(("alerts to", str(address), secrets.get(OPERATOR_ACCOUNT_SECRET)))
    return accounts


def ensure_accounts(lab: Lab, accounts: list[tuple[str, str, str]]) -> None:
    """Make (or set the password of) each mailbox of `lab_accounts`, in the platform's domains
    under the reseller `lab`."""
    inventory = lab.inventory()
    settings = inventory.settings()
    web = lab.host(inventory.with_role("web")[0].name)

    def panel(command: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            lab.ssh_command(web, f"mailstack-panel {command}"),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise LabError(f"mailstack-panel {command}: {result.stderr.strip()}")
        return result.stdout

    if TEST_RESELLER not in panel("reseller list").split():
        panel(f"reseller add {TEST_RESELLER} --brand-name 'mailstack lab'")
    domains = panel("domain list")
    for domain in settings.environment.mail_domains:
        if domain not in domains:
            panel(f"domain add {domain} --reseller {TEST_RESELLER}")
    for _what, address, password in accounts:
        domain = address.rpartition("@")[2]
        exists = address in panel(f"mailbox list --domain {domain}").split()
        action = "change" if exists else "add"
        panel(f"mailbox {action} {address} --password-stdin", stdin=password + "\n")


def _up(lab: Lab, args: argparse.Namespace) -> int:
    inventory = lab.up()
    print(f"lab {lab.name}: {len(inventory.hosts)} hosts up on {lab.bridge}")
    if args.deploy:
        from mailstack.secrets import SecretStore

        accounts = lab_accounts(
            lab.inventory().settings(), SecretStore(lab.state_dir / "secrets.json")
        )
        deploy(lab)
        ensure_accounts(lab, accounts)
        print("\n".join(endpoints(lab)))
        for what, address, password in accounts:
            print(f"{what + ':':<14}{address}  password {password}")
    return 0


def _status(lab: Lab, _args: argparse.Namespace) -> int:
    rows = report.status(lab)
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


def _fault(lab: Lab, args: argparse.Namespace) -> int:
    """One fault primitive (mailstack.lab.faults) on the lab's hosts, as the drills use them."""
    faults, hosts = lab.faults, args.hosts
    needs = {"partition": 2, "heal": 0, "clear": 0, "drop-packets": 1}.get(args.action, 1)
    if len(hosts) < needs or (args.action in ("heal",) and len(hosts) not in (0, 2)):
        raise LabError(f"fault {args.action}: wrong number of hosts: {hosts}")
    if args.action == "partition":
        # The first host from each of the others (e.g. the primary from both replicas).
        for other in hosts[1:]:
            faults.partition(hosts[0], other)
    elif args.action == "heal":
        faults.heal(*hosts)
    elif args.action == "clear":
        faults.clear()
    elif args.action == "drop-packets":
        faults.drop_packets(hosts[0], args.percent)
    else:
        action = getattr(faults, args.action.replace("-", "_"))
        for host in hosts:
            action(host)
    print(f"lab {lab.name}: {args.action} {' '.join(hosts)}".rstrip())
    return 0


FAULTS = (
    "kill", "start", "restart", "freeze", "thaw", "cut-link", "restore-link",
    "partition", "heal", "drop-packets", "clear",
)  # fmt: skip


def _down(lab: Lab, _args: argparse.Namespace) -> int:
    lab.down()
    left = report.leftovers(lab)
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
    fault = sub.add_parser(
        "fault",
        help="inject or lift a fault (docs/lab.md#faults): kill|start|restart|freeze|thaw "
        "HOST...; cut-link|restore-link HOST...; partition HOST OTHER... (HOST from each "
        "other); heal [A B]; drop-packets HOST --percent N; clear",
    )
    fault.add_argument("action", choices=FAULTS)
    fault.add_argument("hosts", nargs="*", help="host names, e.g. db1 or lab-db1")
    fault.add_argument("--percent", type=int, default=0, help="for drop-packets (0 lifts it)")
    fault.set_defaults(lab_func=_fault)
