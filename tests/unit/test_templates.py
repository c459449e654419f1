"""Every file every role installs, rendered for every stack without a host, and checked by the
service's own parser from Debian 13 (the suite's trixie tree) where one runs here.

A typo in a template, a name its context lacks or a directive the service does not know fails
here in seconds instead of in a lab deploy. The checks are the roles' own (each service module's
`CHECK`, which the deploy runs before a restart), run in a copy-on-write view of the tree that
holds the rendered files at their paths.
"""

import importlib
import json
import shlex
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import jinja2
import pytest

from mailstack.deploy import kit
from mailstack.deploy.configfile import ConfigFile
from mailstack.deploy.deployment import REPOSITORY, Deployment
from mailstack.deploy.roles import ROLES, roles_of
from mailstack.failover.hetzner import CloudConfig
from mailstack.lab import pki
from mailstack.lab.hosts import lab_inventory, plan_lab_hosts
from mailstack.lab.lab import DEFAULT_STACK_FILE
from mailstack.lab.settings import load_lab_settings
from mailstack.lab.state import LabState
from mailstack.lab.volumes import inventory_volumes, lab_volumes
from mailstack.policyd.config import PolicydConfig
from mailstack.secrets import SecretStore
from mailstack.services import (
    corosync,
    dovecot,
    etcd,
    exporters,
    panel,
    postfix,
    postgresql,
    tracing,
    valkey,
)
from mailstack.settings import load_stack_file
from mailstack.testing import trixie
from mailstack.tracing.__main__ import TracingConfig

STACKS = sorted(p.name.split(".")[1] for p in (REPOSITORY / "stacks").glob("Pulumi.*.yaml"))
# The clusters' agents get an API endpoint and token; which does not matter for rendering.
CLOUD = CloudConfig(token="template-test-token", endpoint="http://192.0.2.1:8480/v1")
WORK = Path(tempfile.mkdtemp(prefix="mailstack-template-tests-"))


@pytest.fixture(scope="module", autouse=True)
def _remove_work():
    yield
    shutil.rmtree(WORK, ignore_errors=True)


@cache
def deployment(stack: str) -> Deployment:
    """The stack as its settings plan it; the lab's with its lab-only hosts and state."""
    directory = WORK / stack
    directory.mkdir(parents=True, exist_ok=True)
    secrets = SecretStore(directory / "secrets.json")
    if stack != "lab":
        settings = load_stack_file(REPOSITORY / f"stacks/Pulumi.{stack}.yaml")
        return Deployment.planned(settings, secrets, stack, CLOUD)
    settings = load_stack_file(DEFAULT_STACK_FILE)
    lab = load_lab_settings(DEFAULT_STACK_FILE)
    state = LabState(
        name=lab.default_name,
        stack_file=str(DEFAULT_STACK_FILE),
        subnet=settings.network.subnet,
        bridge=f"msl-{lab.default_name}",
        lab=lab,
    )
    state.write(directory / "lab.json")
    (directory / "settings.json").write_text(settings.model_dump_json())
    pki.ensure_ca(directory / "pki", lab.default_name)
    pki.ensure_server_certificate(directory / "pki", "acme", [f"acme.{lab.services_domain}"])
    inventory = lab_inventory(
        settings,
        plan_lab_hosts(settings, state, lab.default_name),
        ssh_key_file=None,
        settings_file=str(directory / "settings.json"),
        lab_file=str(directory / "lab.json"),
        volumes=inventory_volumes(lab_volumes(lab.default_name, settings, directory)),
    )
    return Deployment(settings, inventory, secrets, CLOUD)


def service_module(role: str):
    try:
        return importlib.import_module(f"mailstack.services.{role}")
    except ModuleNotFoundError:
        return None


def role_files(stack: str, role: str, host) -> list[ConfigFile]:
    if role == "base":
        return kit.base_files()
    config_files = getattr(service_module(role), "config_files", None)
    files = config_files(deployment(stack), host) if config_files else []
    # Roles that install the files of more than one service.
    if role == "pacemaker" and files:
        files += corosync.config_files(deployment(stack), host)
        files += corosync.qdevice_files(deployment(stack), host)
    if role == "panel":
        files += [
            f
            for unit in (panel.NOTICES_UNIT, panel.TRACE_PURGE_UNIT)
            for f in panel.job_files(unit)
        ]
    if role == "postfix" and postfix.takeover_hosts(deployment(stack), host):
        files += [*postfix.takeover_files(deployment(stack), host), *postfix.unit_files()]
    return files


def cases() -> list[tuple[str, str]]:
    """(stack, role) for every role some host of the stack gets."""
    found = []
    for stack in STACKS:
        roles = {r for host in deployment(stack).inventory.hosts for r in roles_of(host.roles)}
        found += [(stack, role) for role, _ in ROLES if role in roles]
    return found


def first_host(stack: str, role: str):
    return next(h for h in deployment(stack).inventory.hosts if role in roles_of(h.roles))


@pytest.mark.parametrize(("stack", "role"), cases())
def test_every_file_renders_for_every_host(stack, role):
    for host in deployment(stack).inventory.hosts:
        if role not in roles_of(host.roles):
            continue
        for config in role_files(stack, role, host):
            try:
                content = config.render()
            except jinja2.UndefinedError as error:
                pytest.fail(f"{config.source} for {host.name}: {error}")
            assert content.strip(), f"{config.path} renders empty for {host.name}"
            # Unrendered Jinja2 (generated files may hold other templates: alert summaries).
            if config.source and config.source.endswith(".j2"):
                assert "{{" not in content and "{%" not in content, config.path


def test_a_name_the_context_lacks_is_an_error():
    broken = ConfigFile.template("postfix", "/etc/postfix/master.cf")
    with pytest.raises(jinja2.UndefinedError, match="private_ip"):
        broken.render()


# --- the services' own parsers ---------------------------------------------------------------


def install(root: Path, files: list[ConfigFile]) -> None:
    for config in files:
        target = root / config.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(config.render())
        target.chmod(int(config.mode, 8))


def run_check(root: Path, command: str, host=None) -> subprocess.CompletedProcess:
    """The check inside the tree, in a network namespace of its own where the host's private
    address exists (nginx -t binds the addresses it is told to listen on)."""
    setup = "ip link set lo up"
    if host is not None:
        setup += f" && ip addr add {host.private_ip}/32 dev lo"
    inside = f"{setup} && chroot {shlex.quote(str(root))} sh -c {shlex.quote(command)}"
    return subprocess.run(
        ["unshare", "--net", "sh", "-c", inside], capture_output=True, text=True, timeout=120
    )


def self_signed(root: Path, *paths: str) -> None:
    """A throwaway certificate and key where a configuration names them."""
    certificate, key = (root / p.lstrip("/") for p in paths)
    certificate.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=check.test", "-keyout", key, "-out", certificate],
        check=True, capture_output=True,
    )  # fmt: skip


def prepare(root: Path, role: str) -> None:
    """What the role's own operations (not its files) put on a host before the check."""
    from mailstack.services import certificates

    if role in ("dovecot", "postfix", "nginx"):
        self_signed(root, certificates.CERTIFICATE, certificates.PRIVATE_KEY)
    if role == "dovecot":
        trixie.chroot(root, "groupadd", "-g", str(dovecot.VMAIL_UID), dovecot.VMAIL_USER)
        trixie.chroot(
            root, "useradd", "-u", str(dovecot.VMAIL_UID), "-g", dovecot.VMAIL_USER,
            "-d", dovecot.MAIL_ROOT, "-M", dovecot.VMAIL_USER,
        )  # fmt: skip
    if role == "nginx":
        (root / "etc/nginx/sites-enabled/default").unlink(missing_ok=True)
    if role == "unbound":
        # The unit's start-up helper puts the root's trust anchor in place (dns-root-data).
        trixie.chroot(root, "cp", "/usr/share/dns/root.key", "/var/lib/unbound/root.key")
    if role == "valkey":
        for use in valkey.USES:
            (root / valkey.data_dir(use).lstrip("/")).mkdir(parents=True, exist_ok=True)


CHECKED_HERE = ("dovecot", "rspamd", "haproxy", "nginx", "clamav", "postsrsd", "unbound", "firewall",
                "etcd", "qnetd", "monitoring", "valkeyproxy", "webmail")  # fmt: skip
"""Roles whose own CHECK runs in the tree as it runs on a host."""


def parser_check(stack: str, role: str) -> str | None:
    """The shell command that checks the role's files in the tree; None where none runs here."""
    module = service_module(role)
    if role in CHECKED_HERE:
        return module.CHECK
    if role == "patroni":
        # Patroni's check also asks whether etcd answers: listeners stand in for the members.
        members = deployment(stack).addresses("db")
        listeners = "".join(
            f"ip addr add {a}/32 dev lo 2>/dev/null; python3 -c 'import socket,time;"
            f's=socket.create_server(("{a}",{etcd.CLIENT_PORT}));time.sleep(8)\' & '
            for a in members
        )
        return f"{listeners} sleep 1; {module.CHECK}"
    if role == "valkey":
        if deployment(stack).db_clustered:
            return f"{module.CHECK} && {module.SENTINEL_CHECK}"
        return module.CHECK
    if role == "postfix":
        takeover = postfix.takeover_check(deployment(stack), first_host(stack, role))
        return " && ".join(filter(None, [module.CHECK, takeover]))
    if role == "pacemaker":
        if deployment(stack).settings.topology.profile == "single":
            return None
        return f"{module.CHECK} && {corosync.CHECK} && {corosync.QDEVICE_CHECK}"

    if role == "tracing":
        # The ingester's own check needs the hosts' venv; its file is read below.
        return tracing.RSYSLOG_CHECK
    if role == "postgresql":
        # pg_hba.conf is read through the running server, which the tree does not run.
        return postgresql.CONFIG_CHECK
    if role == "internet":
        return module.nsd_check(deployment(stack)) + " && postconf -n >/dev/null"
    if role == "exporters":
        # Each exporter parses the arguments its environment file gives it.
        files = {f.path for f in role_files(stack, role, first_host(stack, role))}
        units = [u for u in EXPORTERS if exporters.environment_file(u) in files]
        return " && ".join(exporters.check(unit) for unit in units)
    return None


EXPORTERS = (exporters.NODE_UNIT, exporters.POSTFIX_UNIT, exporters.POSTGRES_UNIT,
             exporters.VALKEY_UNIT)  # fmt: skip


@pytest.mark.parametrize(("stack", "role"), cases())
def test_the_services_parsers_accept_the_files(stack, role):
    host = first_host(stack, role)
    files = role_files(stack, role, host)
    # Formats checked here, without the service.
    for config in files:
        content = config.render()
        if config.path.endswith(".json") and config.path.startswith("/etc/pebble"):
            json.loads(content)
        if config.path == "/etc/mailstack/policyd.json":
            PolicydConfig.model_validate_json(content)
        if config.path == tracing.CONFIG:
            TracingConfig.model_validate_json(content)
        if content.startswith("#!/bin/sh"):
            syntax = subprocess.run(["sh", "-n"], input=content, capture_output=True, text=True)
            assert syntax.returncode == 0, f"{config.path}: {syntax.stderr}"
    command = parser_check(stack, role)
    if command is None:
        return
    with trixie.overlay(f"mailstack-check-{role}-") as root:
        prepare(root, role)
        install(root, files)
        result = run_check(root, command, host)
    assert result.returncode == 0, f"{command}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize(
    ("role", "breakage", "message"),
    [
        ("postfix", "smtpd_tls_security_level = may\nsmtpd_tls_secrity_level = encrypt\n",
         "smtpd_tls_secrity_level"),
        ("dovecot", "ssl_min_protocl = TLSv1.2\n", "ssl_min_protocl"),
        ("valkey", "maxmemory-polcy noeviction\n", "maxmemory-polcy"),
        ("haproxy", "listen broken\n    bnd 127.0.0.1:1\n", "bnd"),
        ("firewall", "table inet mailstack {\n chain input {\n tcp dport 22 acept\n }\n}\n",
         "acept"),
        ("tracing", 'action(type="omprog" binary="/bin/cat" confirmMesages="on")\n',
         "confirmMesages"),
    ],
)  # fmt: skip
def test_a_broken_file_fails_its_check_naming_the_line(role, breakage, message):
    """Control for the test above: each parser does refuse what is wrong."""
    host = first_host("lab", role)
    files = role_files("lab", role, host)
    main = files[-1] if role == "postfix" else files[0]
    if role == "postfix":
        main = next(f for f in files if f.path == "/etc/postfix/main.cf")
    if role == "tracing":
        main = next(f for f in files if f.path == tracing.RSYSLOG_CONFIG)
    broken = ConfigFile.literal(main.path, main.render() + breakage)
    with trixie.overlay(f"mailstack-broken-{role}-") as root:
        prepare(root, role)
        install(root, [*(f for f in files if f.path != main.path), broken])
        result = run_check(root, parser_check("lab", role), host)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr, shlex.quote(result.stdout + result.stderr)
