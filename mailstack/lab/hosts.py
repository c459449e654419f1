"""The lab's hosts: the platform's from the topology plan, then the lab-only ones (the load
balancer and the internet), and what makes a host's disk that host.

Pure functions of the settings and the lab's state, so the lab's inventory can be planned
without a running lab (template tests render the lab's files from it).
"""

import hashlib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from mailstack.inventory import Inventory, InventoryHost, InventoryVolume, LoadBalancerAddress
from mailstack.lab.state import LabState
from mailstack.lab.system import run
from mailstack.settings import Settings
from mailstack.settings.plan import plan_hosts, plan_load_balancers

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


def plan_lab_hosts(settings: Settings, state: LabState, lab_name: str) -> list[LabHost]:
    """Every host of the lab: the platform's, then the load balancer, then the internet."""
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
        LabHost(name, roles, addresses, machine_name(lab_name, name))
        for name, roles, addresses in planned
    ]


def lab_inventory(
    settings: Settings,
    hosts: list[LabHost],
    ssh_key_file: str | None,
    settings_file: str | None,
    lab_file: str | None,
    volumes: list[InventoryVolume] = (),
) -> Inventory:
    """The inventory contract of a lab, as pyinfra and testinfra read it."""
    return Inventory(
        stack="lab",
        environment=settings.environment.name,
        ssh_key_file=ssh_key_file,
        settings_file=settings_file,
        lab_file=lab_file,
        hosts=[
            InventoryHost(
                name=host.name,
                roles=list(host.roles),
                private_ip=host.address,
                ssh_address=str(host.address),
            )
            for host in hosts
        ],
        load_balancers=[
            LoadBalancerAddress(name=lb.name, purpose=lb.purpose, private_ip=lb.private_ip)
            for lb in plan_load_balancers(settings)
        ],
        volumes=list(volumes),
    )


def host_files(
    host: LabHost,
    hosts: list[LabHost],
    state: LabState,
    ssh_public_key: str,
    ca_pem: str,
    root: Path,
) -> dict[str, str]:
    """The files (relative to the root) that make a host's disk this host in this lab."""
    prefix = state.subnet.prefixlen
    return {
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
        "root/.ssh/authorized_keys": ssh_public_key,
        # Trusted once a role runs update-ca-certificates (the ACME client's role does).
        "usr/local/share/ca-certificates/mailstack-lab-ca.crt": ca_pem,
    }


def private_reverse_zone(subnet: IPv4Network) -> str:
    """The reverse zone resolvers serve themselves for a private range (RFC 6303)."""
    octets = str(subnet.network_address).split(".")
    if octets[0] == "10":
        return "10.in-addr.arpa"
    if octets[0] == "172":
        return f"{octets[1]}.172.in-addr.arpa"
    return "168.192.in-addr.arpa"


def alert_webhook_url(state: LabState) -> str:
    """Where the lab's Alertmanager posts alerts: the machine's bridge address, where the alert
    tests run their receiver."""
    return f"http://{state.gateway}:{state.lab.alert_webhook_port}/alerts"


STORAGE_ACCOUNT = "storage"
"""The backup account on the lab's internet host, standing in for a Storage Box's."""


def storage_host_key(state_dir: Path) -> Path:
    """The internet host's SSH host key, made once per lab beside its state: the lab's settings
    pin it as the backup target's host key, as an operator pins a Storage Box's."""
    key = state_dir / "storage_host_key"
    if not key.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "storage", "-f", str(key))
    return key


def storage_host_key_files(state_dir: Path) -> dict[str, str]:
    """The internet host's host key files (host_files' form)."""
    key = storage_host_key(state_dir)
    return {
        "etc/ssh/ssh_host_ed25519_key": key.read_text(),
        "etc/ssh/ssh_host_ed25519_key.pub": key.with_suffix(".pub").read_text(),
    }


def lab_settings(
    stack_settings: Settings, state: LabState, ssh_public_key: str, storage_host_key: str
) -> Settings:
    """The stack's settings as a lab runs them: its address range, its SSH key and the
    machine's bridge address as the admin network, its own DNS, and its internet host's
    storage account as the backup target (`storage_host_key`: that host's public key line)."""
    data = stack_settings.model_dump(mode="json")
    if state.subnet != stack_settings.network.subnet:
        data["network"]["ip_range"] = str(state.lab.address_pool)
        data["network"]["subnet"] = str(state.subnet)
    data["environment"]["admin_ssh_keys"] = [ssh_public_key]
    data["environment"]["admin_cidrs"] = [f"{state.gateway}/32"]
    # Alerts' webhook: the lab's alert tests listen on the machine's bridge address.
    data["monitoring"]["notifications"]["webhook_urls"] = [alert_webhook_url(state)]
    data["backups"]["target"] = {
        "host": f"storage.{state.lab.services_domain}",
        "port": 22,
        "user": STORAGE_ACCOUNT,
        "path": state.name,
        # sshd locks the account in its home, which it then shows as /.
        "home": "/",
        "host_key": " ".join(storage_host_key.split()[:2]),
    }
    # The lab's zones are served by its internet host alone, and are not signed; unbound
    # would answer .test and the private reverse zones itself.
    data["dns"]["resolver"] = {
        "forwarders": [str(state.internet_address)],
        "dnssec": False,
        "forwarded_special_zones": [
            state.lab.services_domain.rsplit(".", 1)[-1],
            private_reverse_zone(state.subnet),
        ],
    }
    return Settings.model_validate(data)


FIRST_BOOT_ONLY = frozenset({"etc/resolv.conf"})
"""Files `up` writes only onto a new disk: the resolver is the lab's at first boot; a role may
then give a host its own (unbound on the mx hosts), which `up` keeps."""


def write_host_files(root: Path, files: dict[str, str], host_name: str) -> None:
    """Write `files` (host_files) under the host's root where they differ, and give the host its
    SSH host key once (idempotent)."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if relative in FIRST_BOOT_ONLY and path.exists():
            continue
        if not path.exists() or path.read_text() != content:
            path.write_text(content)
    (root / "root/.ssh").chmod(0o700)
    host_key = root / "etc/ssh/ssh_host_ed25519_key"
    if not host_key.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host_name, "-f", str(host_key))
    # sshd refuses a private host key others may read (one handed in by `files`, too).
    host_key.chmod(0o600)
