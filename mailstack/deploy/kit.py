"""The roles' one way to configure a service: files, then the service's own check, then restart.

    configure("postfix", postfix.config_files(deployment, me), check=postfix.CHECK)

installs every file the service reads (each with what a change of it takes: restart or reload),
and when any changed, runs the service's checker on them before the service sees them: a file
that fails the check is taken back and the deploy of that host fails with the checker's words,
while the service runs on as it was. The transaction (templates/base/.../mailstack-config-txn,
installed by roles/base.py) stays open if a deploy stops half-way, and the next deploy finishes
it, so a change is never left written but unapplied.
"""

import shlex
from collections.abc import Callable, Sequence
from io import StringIO

from pyinfra import host
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory
from pyinfra.operations import apt, files, server, systemd

from mailstack.deploy.configfile import ConfigFile
from mailstack.deploy.deployment import Deployment
from mailstack.inventory import InventoryHost

TXN = "/usr/local/sbin/mailstack-config-txn"
TXN_STATE = "/var/lib/mailstack/config-txn"
APT_LOCK_TIMEOUT_SECONDS = 600
"""How long a package operation waits for another apt or dpkg run to finish."""


def base_files() -> list[ConfigFile]:
    """What roles/base.py installs on every host before any service: apt's lock timeout (a
    deploy that meets apt's daily run waits instead of failing) and the transaction script."""
    return [
        ConfigFile.template(
            "base",
            "/etc/apt/apt.conf.d/90mailstack-deploy",
            lock_timeout_seconds=APT_LOCK_TIMEOUT_SECONDS,
        ),
        ConfigFile.template("base", TXN, mode="755"),
    ]


def target() -> tuple[Deployment, InventoryHost]:
    """The deployment the host being deployed belongs to, and that host in its inventory."""
    deployment = Deployment.for_host(host)
    return deployment, deployment.host(host.data.name)


def packages(what: str, names: Sequence[str], held: Sequence[str] = (), **options) -> OperationMeta:
    """Debian packages. The package lists are refreshed first (when older than an hour) only
    if one of them is missing, so a converged host reports no change.

    `held` names units the packages' maintainer scripts must not start when they are first
    installed (a cluster starts them, or they cannot run until configured): they are masked
    for the install (until the next boot at the latest) and unmasked after it."""
    installed = host.get_fact(DebPackages)
    missing = [name for name in names if name not in installed]
    hold = list(held) if missing else []
    if hold:
        server.shell(
            name=f"Hold {', '.join(hold)} for the install",
            commands=["systemctl mask --runtime " + " ".join(hold)],
        )
    operation = apt.packages(
        name=f"Install {what}",
        packages=list(names),
        update=bool(missing),
        cache_time=3600,
        **options,
    )
    if hold:
        server.shell(
            name=f"Release {', '.join(hold)}",
            commands=["systemctl unmask --runtime " + " ".join(hold)],
        )
    return operation


def name_hosts(name: str, addresses: Sequence[str], why: str) -> OperationMeta:
    """One name for several hosts in /etc/hosts (a client tries each address in turn)."""
    return files.block(
        name=f"Name {why}: {name}",
        path="/etc/hosts",
        content=[f"{address} {name}" for address in addresses],
        marker=f"# {{mark}} mailstack {name}",
    )


def install(config: ConfigFile, label: str) -> OperationMeta:
    """One file in place, as it is rendered (no service applies it)."""
    return files.put(
        name=f"{label}: {config.path}",
        src=StringIO(config.render()),
        dest=config.path,
        user=config.user,
        group=config.group,
        mode=config.mode,
        create_remote_dir=True,
    )


def configure(
    unit: str,
    config_files: Sequence[ConfigFile],
    *,
    check: str | None,
    running: bool | None = True,
    enabled: bool | None = None,
    watch: Sequence[OperationMeta] = (),
) -> list[OperationMeta]:
    """Install a systemd unit's files, check them, restart or reload it, keep it running.

    `check` is the service's own checker (a shell command reading the installed files), None
    where the service has none. `running` and `enabled` are the unit's wanted state (enabled
    follows running unless given); `running=None` leaves starting and stopping it to a cluster
    manager (a change still restarts or reloads it where it runs, and it is not started at
    boot). `watch` adds operations whose change also needs a restart (files the unit reads
    that other operations manage). Returns the file operations.
    """
    applied = [f for f in config_files if f.effect != "none"]
    # An open transaction from an earlier deploy: the files are in place, the check and the
    # restart still to come.
    open_before = host.get_fact(Directory, path=f"{TXN_STATE}/{unit}") is not None
    operations: list[OperationMeta] = []

    def changes(effect: str) -> bool:
        return any(
            op.did_change()
            for op, f in zip(operations, config_files, strict=True)
            if f.effect == effect
        )

    server.shell(
        name=f"{unit}: keep the configuration it runs with until the new one passes",
        commands=[f"{TXN} begin {unit} " + " ".join(shlex.quote(f.path) for f in applied)],
        _if=lambda: any(
            op.will_change
            for op, f in zip(operations, config_files, strict=True)
            if f.effect != "none"
        ),
    )
    for config in config_files:
        operations.append(install(config, unit))

    def restart() -> bool:
        return open_before or changes("restart") or any(op.did_change() for op in watch)

    def reload() -> bool:
        return changes("reload") and not restart()

    daemon_reload = any(f.path.startswith("/etc/systemd/") for f in applied)
    for effect, wanted in (("restart", restart), ("reload", reload)):
        _commit(unit, effect, check, daemon_reload, wanted)
    if running is None:
        name = f"Leave {unit} to the cluster (not started at boot)"
    else:
        name = f"Run {unit}" if running else f"Keep {unit} stopped"
    systemd.service(
        name=name,
        service=unit,
        running=running,
        enabled=bool(running) if enabled is None else enabled,
    )
    return operations


def checked(label: str, config_files: Sequence[ConfigFile], *, check: str) -> list[OperationMeta]:
    """Install files no running unit reads yet (what a service reads when a cluster starts it
    elsewhere), checked like `configure`'s: a file that fails the check is taken back and the
    deploy fails with the checker's words. Returns the file operations."""
    operations: list[OperationMeta] = []
    server.shell(
        name=f"{label}: keep the files until the new ones pass",
        commands=[f"{TXN} begin {label} " + " ".join(shlex.quote(f.path) for f in config_files)],
        _if=lambda: any(op.will_change for op in operations),
    )
    for config in config_files:
        operations.append(install(config, label))
    server.shell(
        name=f"check {label}'s files",
        commands=[f"{TXN} commit {label} none -- {shlex.quote(check)}"],
        _if=lambda: any(op.did_change() for op in operations),
    )
    return operations


def _commit(
    unit: str, effect: str, check: str | None, daemon_reload: bool, wanted: Callable[[], bool]
) -> None:
    command = f"{TXN} commit {unit} {effect}"
    if daemon_reload:
        command += " --daemon-reload"
    if check:
        command += f" -- {shlex.quote(check)}"
    checked = f"check {unit}'s configuration" if check else f"{unit} has no checker"
    server.shell(name=f"{checked}, then {effect} it", commands=[command], _if=wanted)
