"""One lab: the platform's hosts as systemd-nspawn containers on a bridge of their own.

Where things live:
- `.lab/<name>/` in the repository (git-ignored): the lab's SSH key, its state (`lab.json`), the
  effective settings (`settings.json`) and the inventory (`inventory.json`) pyinfra reads;
- `/var/lib/mailstack/lab/<name>/<host>/`: each host's disk (overlay upper layer) and console log;
- `/var/lib/mailstack/lab/<name>/volumes/`: the lab's Hetzner volumes (`mailstack.lab.volumes`),
  served with the hosts as servers by the lab's Hetzner Cloud API (`mailstack.lab.cloudapi`);
- `/var/cache/mailstack/`: the base image and the package cache, which outlive labs;
- cgroups `mailstack-lab/<name>/<host>`, bridge `msl-<name>`, nft tables `mailstack_lab_<name>`.
"""

import contextlib
import fcntl
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mailstack.inventory import Inventory
from mailstack.lab import aptcache, cloudservice, network, pki
from mailstack.lab.access import ssh_command
from mailstack.lab.hosts import (
    LabHost,
    host_files,
    lab_inventory,
    lab_settings,
    plan_lab_hosts,
    storage_host_key,
    storage_host_key_files,
    write_host_files,
)
from mailstack.lab.rootfs import base_image
from mailstack.lab.settings import load_lab_settings, validate_name
from mailstack.lab.state import LabState, allocate_subnet, foreign_owner
from mailstack.lab.system import (
    NSPAWN_RUNTIME,
    Cgroup,
    LabError,
    boot_container,
    check_preconditions,
    ensure_nspawn_runtime,
    mount_overlay,
    raise_inotify_limit,
    run,
)
from mailstack.lab.teardown import remove_from_machine
from mailstack.lab.volumes import Volumes, inventory_volumes
from mailstack.settings import Settings, load_stack_file

REPOSITORY = Path(__file__).resolve().parents[2]
DEFAULT_STACK_FILE = REPOSITORY / "stacks" / "Pulumi.lab.yaml"
STATE_ROOT = REPOSITORY / ".lab"
RUNTIME_ROOT = Path("/var/lib/mailstack/lab")
ALLOCATION_LOCK = Path("/run/mailstack-lab.lock")


@contextlib.contextmanager
def _machine_lock():
    """Serialises address allocation and bridge creation between labs started at once."""
    with open(ALLOCATION_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class Lab:
    """A lab by name; `up()` creates what is missing, `down()` removes everything it made."""

    def __init__(self, name: str | None = None, stack_file: str | Path | None = None, log=None):
        self.stack_file = Path(stack_file or DEFAULT_STACK_FILE).resolve()
        self.stack_settings = load_stack_file(self.stack_file)
        self.lab_settings = load_lab_settings(self.stack_file)
        self.name = validate_name(name or self.lab_settings.default_name)
        self.log = log or (lambda message: None)
        self.state_dir = STATE_ROOT / self.name
        self.runtime = RUNTIME_ROOT / self.name
        self.bridge = f"msl-{self.name}"
        from mailstack.lab.faults import Faults

        self.faults = Faults(self)
        self.volumes = Volumes(self)

    # --- state ------------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.state_dir / "lab.json"

    @property
    def inventory_file(self) -> Path:
        return self.state_dir / "inventory.json"

    @property
    def settings_file(self) -> Path:
        return self.state_dir / "settings.json"

    @property
    def ssh_key(self) -> Path:
        return self.state_dir / "ssh_key"

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def cloud_env_file(self) -> Path:
        """HCLOUD_ENDPOINT and HCLOUD_TOKEN of the lab's cloud API, for `mailstack cloud`."""
        return self.state_dir / "hcloud.env"

    def exists(self) -> bool:
        return self.state_file.exists()

    def state(self) -> LabState:
        if not self.exists():
            raise LabError(
                f"lab {self.name!r} is not up (no {self.state_file}): `mailstack lab up`"
            )
        return LabState.read(self.state_file)

    def save_state(self, state: LabState) -> None:
        state.write(self.state_file)

    def effective_settings(self, state: LabState) -> Settings:
        """The stack's settings as this lab runs them (mailstack.lab.hosts.lab_settings)."""
        return lab_settings(
            self.stack_settings,
            state,
            self.ssh_key.with_suffix(".pub").read_text(),
            storage_host_key(self.state_dir).with_suffix(".pub").read_text(),
        )

    def hosts(self, state: LabState | None = None) -> list[LabHost]:
        """Every host of the lab: the platform's, then the load balancer, then the internet."""
        state = state or self.state()
        settings = Settings.model_validate_json(self.settings_file.read_text())
        return plan_lab_hosts(settings, state, self.name)

    def host(self, name: str) -> LabHost:
        """A host by its name, with or without the environment prefix ('lab-mx1' or 'mx1'), or
        by one of its addresses."""
        hosts = self.hosts()
        for host in hosts:
            if name in (host.name, host.name.split("-", 1)[-1], *map(str, host.addresses)):
                return host
        raise LabError(
            f"no host {name!r} in lab {self.name}; hosts: {', '.join(h.name for h in hosts)}"
        )

    def cgroup(self, host: LabHost) -> Cgroup:
        return Cgroup(self.name, host.name)

    # --- up ---------------------------------------------------------------------------------

    def up(self) -> Inventory:
        """Create whatever is missing and start every host that is not running (idempotent)."""
        check_preconditions()
        self._claim()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.ssh_key.exists():
            run(
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"lab-{self.name}",
                "-f",
                str(self.ssh_key),
            )
        pki.ensure_ca(self.pki_dir, self.name)
        pki.ensure_server_certificate(
            self.pki_dir, "acme", [f"acme.{self.lab_settings.services_domain}"]
        )
        base = base_image(self.lab_settings.suite, self.lab_settings.base_packages, self.log)
        with _machine_lock():
            if self.exists():
                state = self.state()
            else:
                state = LabState(
                    name=self.name,
                    stack_file=str(self.stack_file),
                    subnet=allocate_subnet(
                        self.name,
                        self.stack_settings.network.subnet,
                        self.lab_settings,
                        STATE_ROOT,
                        self.bridge,
                    ),
                    bridge=self.bridge,
                    lab=self.lab_settings,
                )
            network.create_bridge(self.bridge, state.gateway, state.subnet)
            self.save_state(state)
        self.settings_file.write_text(self.effective_settings(state).model_dump_json(indent=2))
        hosts = self.hosts(state)
        network.apply_guard(
            self.name,
            self.bridge,
            [state.lab.apt_cache_port, state.lab.cloud_api_port, state.lab.alert_webhook_port],
        )
        self.faults.apply(state)
        ensure_nspawn_runtime()
        raise_inotify_limit()
        aptcache.start(self.name, state.gateway, state.lab.apt_cache_port, self.runtime)
        self.volumes.create()
        cloudservice.write_env_file(
            self.cloud_env_file,
            cloudservice.endpoint(state.gateway, state.lab.cloud_api_port),
            cloudservice.token(self.state_dir),
        )
        cloudservice.start(
            self.name, self.stack_file, state.gateway, state.lab.cloud_api_port, self.runtime
        )
        started = []
        for host in hosts:
            self._prepare(host, hosts, base, state)
            if not self.running(host):
                self.start_host(host)
                started.append(host)
        if started:
            self.log(f"booting {len(started)} host(s): {', '.join(h.name for h in started)}")
        self.wait_ready(hosts, timeout=state.lab.boot_timeout_seconds)
        inventory = self.inventory(state)
        inventory.write(self.inventory_file)
        return inventory

    @property
    def owner_file(self) -> Path:
        """Names the state directory of the repository that runs the lab: lab names are
        machine-wide (bridge, cgroups, disks), state directories are per checkout."""
        return self.runtime / "owner"

    def _check_owner(self) -> None:
        """Refuse to touch a lab another checkout runs. One whose processes are gone (machine
        restarted, session ended) or whose checkout is gone is stale and may be taken over."""
        owner = foreign_owner(self.owner_file, self.state_dir)
        if owner and Path(owner).exists() and Cgroup(self.name).populated():
            raise LabError(
                f"lab {self.name!r} on this machine belongs to {owner} and runs: take it down "
                "from there, or use another --name"
            )

    def _claim(self) -> None:
        self._check_owner()
        owner = foreign_owner(self.owner_file, self.state_dir)
        if owner:
            self.log(f"lab {self.name}: removing what is left of it from {owner}")
            remove_from_machine(self)
        self.runtime.mkdir(parents=True, exist_ok=True)
        self.owner_file.write_text(str(self.state_dir))

    def _host_dir(self, host: LabHost) -> Path:
        return self.runtime / host.name

    def root(self, host: LabHost) -> Path:
        return self._host_dir(host) / "root"

    def console_log(self, host: LabHost) -> Path:
        return self._host_dir(host) / "console.log"

    def _prepare(self, host: LabHost, hosts: list[LabHost], base: Path, state: LabState) -> None:
        """Mount the host's overlay and write what makes it this host (idempotent)."""
        directory = self._host_dir(host)
        root = self.root(host)
        mount_overlay(base, directory / "upper", directory / "work", root)
        files = host_files(
            host,
            hosts,
            state,
            self.ssh_key.with_suffix(".pub").read_text(),
            (self.pki_dir / "ca.pem").read_text(),
            root,
        )
        if "internet" in host.roles:
            files.update(storage_host_key_files(self.state_dir))
        write_host_files(root, files, host.name)

    # --- hosts ------------------------------------------------------------------------------

    def running(self, host: LabHost) -> bool:
        return self.cgroup(host).populated()

    def start_host(self, host: LabHost) -> None:
        """Boot the host from its disk as it is (a no-op when it runs). A systemd-nspawn that
        exits before the host's init runs is started once more; raises LabError, with the end of
        the host's console, if the second one exits too."""
        if self.running(host):
            return
        for attempt in (1, 2):
            self._launch(host)
            try:
                # nspawn gives every boot a new /dev: the host's volumes are handed in again.
                self.volumes.hand_in(host)
                return
            except LabError as stopped:
                if self.running(host) or attempt == 2:
                    raise LabError(
                        f"{stopped}; last lines of its console ({self.console_log(host)}):\n"
                        + self.console_tail(host)
                    ) from stopped
                self.log(
                    f"{host.name} stopped while starting, once more:\n{self.console_tail(host, 5)}"
                )

    def _launch(self, host: LabHost) -> None:
        group = self.cgroup(host)
        # A killed host leaves its supervisor's empty cgroups behind; start from a clean one.
        group.remove()
        group.create()
        self.volumes.grant(host)
        for leftover in NSPAWN_RUNTIME.glob(f"*/{host.machine}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        boot_container(
            self.root(host), host.machine, host.name, self.bridge, self.console_log(host), group
        )

    def kill_host(self, host: LabHost) -> None:
        """Stop the host abruptly, like pulling its power: SIGKILL to all it runs, at once.
        Filesystems on its volumes are shut down first, so they are left as a crash leaves them
        (a killed mount namespace would otherwise unmount them cleanly)."""
        self.volumes.shut_down_filesystems(host)
        group = self.cgroup(host)
        payload = Cgroup(self.name, host.name, "payload")
        if group.frozen():
            group.freeze(False)
        if payload.v2.exists():
            payload.kill()
        deadline = time.monotonic() + 10
        while group.populated() and time.monotonic() < deadline:
            time.sleep(0.05)
        group.kill()

    def ssh_command(self, host: LabHost, *command: str, timeout: int = 5) -> list[str]:
        return ssh_command(self.ssh_key, host.address, *command, timeout=timeout)

    def ssh(self, host: LabHost, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a shell command on the host; raises subprocess.TimeoutExpired past `timeout`."""
        return subprocess.run(
            self.ssh_command(host, command, timeout=max(1, int(min(timeout, 10)))),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ssh_ready(self, host: LabHost) -> bool:
        try:
            socket.create_connection((str(host.address), 22), timeout=1).close()
            return self.ssh(host, "true", timeout=5).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def wait_ready(self, hosts: list[LabHost], timeout: float) -> None:
        """Wait until every host answers SSH; a host that dies or takes too long is an error."""

        def wait(host: LabHost) -> str | None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.ssh_ready(host):
                    return None
                if not self.running(host):
                    return f"{host.name} stopped while booting"
                time.sleep(0.2)
            return f"{host.name} not reachable by SSH after {timeout:.0f} s"

        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            problems = [(h, p) for h, p in zip(hosts, pool.map(wait, hosts), strict=True) if p]
        if problems:
            host, problem = problems[0]
            raise LabError(
                f"{problem}; last lines of its console ({self.console_log(host)}):\n"
                + self.console_tail(host)
            )

    def console_tail(self, host: LabHost, lines: int = 25) -> str:
        path = self.console_log(host)
        if not path.exists():
            return "(no console log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # --- inventory and status ---------------------------------------------------------------

    def inventory(self, state: LabState | None = None) -> Inventory:
        state = state or self.state()
        settings = Settings.model_validate_json(self.settings_file.read_text())
        return lab_inventory(
            settings,
            self.hosts(state),
            ssh_key_file=str(self.ssh_key),
            settings_file=str(self.settings_file),
            lab_file=str(self.state_file),
            volumes=inventory_volumes(self.volumes.all()),
        )

    # --- down -------------------------------------------------------------------------------

    def down(self) -> None:
        """Remove everything the lab created; works from whatever is left of it."""
        check_preconditions()
        self._check_owner()
        remove_from_machine(self)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def running_labs() -> list[str]:
    """Names of the labs with state in this repository."""
    return sorted(p.parent.name for p in STATE_ROOT.glob("*/lab.json"))
