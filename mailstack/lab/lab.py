"""One lab: the platform's hosts as systemd-nspawn containers on a bridge of their own.

Where things live:
- `.lab/<name>/` in the repository (git-ignored): the lab's SSH key, its state (`lab.json`), the
  effective settings (`settings.json`) and the inventory (`inventory.json`) pyinfra reads;
- `/var/lib/mailstack/lab/<name>/<host>/`: each host's disk (overlay upper layer) and console log;
- `/var/cache/mailstack/`: the base image and the package cache, which outlive labs;
- cgroups `mailstack-lab/<name>/<host>`, bridge `msl-<name>`, nft tables `mailstack_lab_<name>`.
"""

import contextlib
import fcntl
import hashlib
import re
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from pydantic import Field

from mailstack.inventory import Inventory, InventoryHost, LoadBalancerAddress
from mailstack.lab import aptcache, network, pki
from mailstack.lab.rootfs import base_image
from mailstack.lab.settings import LAB_NAME_PATTERN, LabSettings, load_lab_settings
from mailstack.lab.system import (
    NSPAWN_RUNTIME,
    Cgroup,
    LabError,
    check_preconditions,
    ensure_nspawn_runtime,
    mount_overlay,
    raise_inotify_limit,
    release_nspawn_runtime,
    run,
    unmount,
)
from mailstack.settings import Settings, load_stack_file
from mailstack.settings.base import Model
from mailstack.topology import plan_hosts, plan_load_balancers

REPOSITORY = Path(__file__).resolve().parents[2]
DEFAULT_STACK_FILE = REPOSITORY / "stacks" / "Pulumi.lab.yaml"
STATE_ROOT = REPOSITORY / ".lab"
RUNTIME_ROOT = Path("/var/lib/mailstack/lab")
ALLOCATION_LOCK = Path("/run/mailstack-lab.lock")
SSH_OPTIONS = (
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "BatchMode=yes",
)


MACHINE_CA_BUNDLE = "etc/mailstack-lab/machine-ca-certificates.crt"
"""The machine's own CA bundle, copied into every host for pip's downloads through the proxy."""


HOSTS_BLOCK = ("# BEGIN mailstack lab hosts\n", "# END mailstack lab hosts\n")


def _with_block(path: Path, block: str) -> str:
    """The file's content with the lab's block replaced, and lines that deploys added (e.g.
    the mailstore names in /etc/hosts) kept, so `lab up` on a deployed lab changes nothing."""
    begin, end = HOSTS_BLOCK
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        after = rest.split(end, 1)[1]
    else:
        # A file from the base image (or an older lab) is replaced by the block.
        before, after = "", ""
    return before + begin + block + end + after


class LabState(Model):
    """What a lab was created with and which faults are in force; `.lab/<name>/lab.json`."""

    name: str = Field(description="Lab name.")
    stack_file: str = Field(description="Stack file the lab was created from.")
    subnet: IPv4Network = Field(description="The lab's address range (one /24 on its bridge).")
    bridge: str = Field(description="The lab's bridge.")
    lab: LabSettings = Field(description="The lab-only settings in force.")
    partitions: list[tuple[str, str]] = Field(
        default_factory=list, description="Pairs of hosts that cannot reach each other."
    )
    loss: dict[str, int] = Field(
        default_factory=dict, description="Share of packets (percent) dropped per host."
    )

    @property
    def gateway(self) -> IPv4Address:
        """The machine's address on the bridge: apt-cacher-ng answers there."""
        return self.subnet.network_address + 1

    @property
    def internet_address(self) -> IPv4Address:
        return self.subnet.network_address + self.lab.internet_offset

    @property
    def listed_address(self) -> IPv4Address:
        return self.subnet.network_address + self.lab.listed_offset

    def write(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> "LabState":
        return cls.model_validate_json(Path(path).read_text())


@dataclass(frozen=True)
class LabHost:
    """One lab host: a platform host from the topology plan, or a lab-only one."""

    name: str
    roles: tuple[str, ...]
    addresses: tuple[IPv4Address, ...]
    machine: str
    """systemd-nspawn machine name: short and unique per lab, it names the host's link."""

    @property
    def address(self) -> IPv4Address:
        return self.addresses[0]

    @property
    def link(self) -> str:
        """The host's port on the bridge (named by systemd-nspawn after the machine)."""
        return f"vb-{self.machine}"


def machine_name(lab: str, host: str) -> str:
    # "vb-" + machine must fit the 15 characters of an interface name.
    return "ms" + hashlib.sha256(f"{lab}/{host}".encode()).hexdigest()[:8]


def validate_name(name: str) -> str:
    if not re.fullmatch(LAB_NAME_PATTERN, name):
        raise LabError(
            f"lab name {name!r}: 1-11 lower-case letters and digits, starting with a letter "
            "(it names the bridge, msl-<name>)"
        )
    return name


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

    def _allocate_subnet(self) -> IPv4Network:
        """The stack's subnet for the default lab; else the first free /24 of the pool."""
        own = self.stack_settings.network.subnet
        if self.name == self.lab_settings.default_name:
            return own
        taken = {own}
        for other in STATE_ROOT.glob("*/lab.json"):
            with contextlib.suppress(ValueError, OSError):
                taken.add(LabState.read(other).subnet)
        for candidate in self.lab_settings.address_pool.subnets(new_prefix=24):
            if candidate in taken or network.addresses_in_use(candidate, self.bridge):
                continue
            return candidate
        raise LabError(f"no free /24 left in {self.lab_settings.address_pool} for lab {self.name}")

    def effective_settings(self, state: LabState) -> Settings:
        """The stack's settings as this lab runs them: its address range and its SSH key."""
        data = self.stack_settings.model_dump(mode="json")
        if state.subnet != self.stack_settings.network.subnet:
            data["network"]["ip_range"] = str(self.lab_settings.address_pool)
            data["network"]["subnet"] = str(state.subnet)
        data["environment"]["admin_ssh_keys"] = [self.ssh_key.with_suffix(".pub").read_text()]
        data["environment"]["admin_cidrs"] = [f"{state.gateway}/32"]
        return Settings.model_validate(data)

    def hosts(self, state: LabState | None = None) -> list[LabHost]:
        """Every host of the lab: the platform's, then the load balancer, then the internet."""
        state = state or self.state()
        settings = Settings.model_validate_json(self.settings_file.read_text())
        env = settings.environment.name
        planned = [(h.name, tuple(h.roles), (h.private_ip,)) for h in plan_hosts(settings)]
        planned.append(
            (
                f"{env}-{state.lab.loadbalancer_host}",
                ("loadbalancer",),
                tuple(lb.private_ip for lb in plan_load_balancers(settings)),
            )
        )
        planned.append(
            (
                f"{env}-{state.lab.internet_host}",
                ("internet",),
                (state.internet_address, state.listed_address),
            )
        )
        return [
            LabHost(name, roles, addresses, machine_name(self.name, name))
            for name, roles, addresses in planned
        ]

    def host(self, name: str) -> LabHost:
        """A host by its name, with or without the environment prefix ('lab-mx1' or 'mx1')."""
        hosts = self.hosts()
        for host in hosts:
            if name in (host.name, host.name.split("-", 1)[-1]):
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
                    subnet=self._allocate_subnet(),
                    bridge=self.bridge,
                    lab=self.lab_settings,
                )
            network.create_bridge(self.bridge, state.gateway, state.subnet)
            self.save_state(state)
        self.settings_file.write_text(self.effective_settings(state).model_dump_json(indent=2))
        hosts = self.hosts(state)
        network.apply_guard(self.name, self.bridge, state.lab.apt_cache_port)
        self.faults.apply(state)
        ensure_nspawn_runtime()
        raise_inotify_limit()
        aptcache.start(self.name, state.gateway, state.lab.apt_cache_port, self.runtime)
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

    def _foreign_owner(self) -> str | None:
        """The state directory of another checkout that runs this lab, if any."""
        if not self.owner_file.exists():
            return None
        owner = self.owner_file.read_text()
        return None if owner == str(self.state_dir) else owner

    def _check_owner(self) -> None:
        """Refuse to touch a lab another checkout runs. One whose processes are gone (machine
        restarted, session ended) or whose checkout is gone is stale and may be taken over."""
        owner = self._foreign_owner()
        if owner and Path(owner).exists() and Cgroup(self.name).populated():
            raise LabError(
                f"lab {self.name!r} on this machine belongs to {owner} and runs: take it down "
                "from there, or use another --name"
            )

    def _claim(self) -> None:
        self._check_owner()
        owner = self._foreign_owner()
        if owner:
            self.log(f"lab {self.name}: removing what is left of it from {owner}")
            self._remove_from_machine()
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
        prefix = state.subnet.prefixlen
        files = {
            "etc/hostname": f"{host.name}\n",
            "etc/hosts": _with_block(
                root / "etc/hosts",
                "127.0.0.1 localhost\n" + "".join(f"{h.address} {h.name}\n" for h in hosts),
            ),
            "etc/systemd/network/10-lab.network": "[Match]\nName=host0\n\n[Network]\n"
            + "".join(f"Address={a}/{prefix}\n" for a in host.addresses)
            # No gateway: nothing leaves the bridge (packages come through apt-cacher-ng).
            + "LinkLocalAddressing=no\nIPv6AcceptRA=no\n",
            "etc/resolv.conf": f"nameserver {state.internet_address}\noptions timeout:2\n",
            "etc/apt/apt.conf.d/01lab-proxy": (
                f'Acquire::http::Proxy "http://{state.gateway}:{state.lab.apt_cache_port}";\n'
            ),
            # Python packages for the hosts' venvs come through the same proxy, from the same
            # registry the machine uses, trusting what the machine trusts on that path.
            "etc/pip.conf": (
                f"[global]\nproxy = http://{state.gateway}:{state.lab.apt_cache_port}\n"
                f"cert = /{MACHINE_CA_BUNDLE}\n"
            ),
            MACHINE_CA_BUNDLE: Path("/etc/ssl/certs/ca-certificates.crt").read_text(),
            "etc/ssh/sshd_config.d/lab.conf": "HostKey /etc/ssh/ssh_host_ed25519_key\n"
            "PasswordAuthentication no\nUseDNS no\n",
            "root/.ssh/authorized_keys": self.ssh_key.with_suffix(".pub").read_text(),
            # Trusted once a role runs update-ca-certificates (the ACME client's role does).
            "usr/local/share/ca-certificates/mailstack-lab-ca.crt": (
                self.pki_dir / "ca.pem"
            ).read_text(),
        }
        for relative, content in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text() != content:
                path.write_text(content)
        (root / "root/.ssh").chmod(0o700)
        host_key = root / "etc/ssh/ssh_host_ed25519_key"
        if not host_key.exists():
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.name, "-f", str(host_key))

    # --- hosts ------------------------------------------------------------------------------

    def running(self, host: LabHost) -> bool:
        return self.cgroup(host).populated()

    def start_host(self, host: LabHost) -> None:
        """Boot the host from its disk as it is (a no-op when it runs)."""
        if self.running(host):
            return
        group = self.cgroup(host)
        # A killed host leaves its supervisor's empty cgroups behind; start from a clean one.
        group.remove()
        group.create()
        for leftover in NSPAWN_RUNTIME.glob(f"*/{host.machine}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        command = [
            "systemd-nspawn",
            "--quiet",
            f"--directory={self.root(host)}",
            f"--machine={host.machine}",
            f"--hostname={host.name}",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--console=read-only",
            f"--network-bridge={self.bridge}",
            "--resolv-conf=off",
            "--timezone=off",
            "--link-journal=no",
            "--",
            "--show-status=yes",
        ]
        with open(self.console_log(host), "ab") as console:
            console.write(f"\n--- start {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            console.flush()
            subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=group.enter,
            )

    def kill_host(self, host: LabHost) -> None:
        """Stop the host abruptly, like pulling its power: SIGKILL to all it runs, at once."""
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
        return [
            "ssh",
            "-i",
            str(self.ssh_key),
            *SSH_OPTIONS,
            "-o",
            f"ConnectTimeout={timeout}",
            f"root@{host.address}",
            *command,
        ]

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
        return Inventory(
            stack="lab",
            environment=settings.environment.name,
            ssh_key_file=str(self.ssh_key),
            settings_file=str(self.settings_file),
            lab_file=str(self.state_file),
            hosts=[
                InventoryHost(
                    name=host.name,
                    roles=list(host.roles),
                    private_ip=host.address,
                    ssh_address=str(host.address),
                )
                for host in self.hosts(state)
            ],
            load_balancers=[
                LoadBalancerAddress(name=lb.name, purpose=lb.purpose, private_ip=lb.private_ip)
                for lb in plan_load_balancers(settings)
            ],
        )

    def status(self) -> list[dict]:
        """Per host: running, frozen, link state, systemd's state and memory in use."""

        def one(host: LabHost) -> dict:
            running = self.running(host)
            frozen = running and self.cgroup(host).frozen()
            system = "stopped"
            if frozen:
                system = "frozen"
            elif running:
                try:
                    result = self.ssh(host, "systemctl is-system-running", timeout=8)
                    system = result.stdout.strip() or "unreachable"
                except subprocess.TimeoutExpired:
                    system = "unreachable"
            memory = self.cgroup(host).memory_bytes() if running else None
            return {
                "host": host.name,
                "roles": ",".join(host.roles),
                "addresses": " ".join(str(a) for a in host.addresses),
                "link": host.link if network.link_is_up(host.link) else f"{host.link} (down)",
                "system": system,
                "memory_mib": round(memory / 2**20) if memory else None,
            }

        hosts = self.hosts()
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            return list(pool.map(one, hosts))

    # --- down -------------------------------------------------------------------------------

    def down(self) -> None:
        """Remove everything the lab created; works from whatever is left of it."""
        check_preconditions()
        self._check_owner()
        self._remove_from_machine()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def _remove_from_machine(self) -> None:
        """Processes, mounts, disks, links, nft tables and cgroups of the lab (not its state)."""
        machines = []
        if self.exists() and self.settings_file.exists():
            machines = [host.machine for host in self.hosts()]
        lab_group = Cgroup(self.name)
        for group in sorted(lab_group.v2.glob("*")) if lab_group.v2.exists() else []:
            if group.is_dir() and (group / "cgroup.freeze").exists():
                (group / "cgroup.freeze").write_text("0")
        lab_group.kill()
        aptcache.stop(self.name)
        mounts = [
            Path(line.split()[1])
            for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1].startswith(f"{self.runtime}/")
        ]
        for mount in sorted(mounts, key=lambda p: -len(p.parts)):
            unmount(mount)
        shutil.rmtree(self.runtime, ignore_errors=True)
        for machine in machines:
            network.delete_link(f"vb-{machine}")
            for leftover in NSPAWN_RUNTIME.glob(f"*/{machine}*"):
                shutil.rmtree(leftover, ignore_errors=True)
        network.delete_link(self.bridge)
        network.delete_tables(self.name)
        lab_group.remove()
        release_nspawn_runtime()

    def leftovers(self) -> list[str]:
        """Anything of this lab still on the machine (empty after `down`)."""
        found = []
        if network.link_exists(self.bridge):
            found.append(f"link {self.bridge}")
        found += [f"nft table {t}" for t in network.tables_exist(self.name)]
        found += [f"cgroup {p}" for p in Cgroup(self.name).paths() if p.exists()]
        found += [
            f"mount {line.split()[1]}"
            for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1].startswith(f"{self.runtime}/")
        ]
        for path in (self.runtime, self.state_dir):
            if path.exists():
                found.append(f"directory {path}")
        # Host supervisors and apt-cacher-ng name a path of the lab's runtime directory.
        marker = f"{self.runtime}/"
        for proc in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError):
                cmdline = proc.read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if marker in cmdline:
                    found.append(f"process {proc.parent.name}: {cmdline.strip()}")
        return found


def running_labs() -> list[str]:
    """Names of the labs with state in this repository."""
    return sorted(p.parent.name for p in STATE_ROOT.glob("*/lab.json"))
