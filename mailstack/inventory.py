"""The inventory contract: the hosts of one environment, as pyinfra and testinfra see them.

The Pulumi program exports it as the stack output `inventory`; the lab writes the same model to
its state directory. `inventory/hcloud.py` and `inventory/lab.py` turn it into pyinfra groups.
"""

import functools
import json
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Literal

from pydantic import Field

from mailstack.settings.base import Model
from mailstack.settings.topology import ROLES

InventoryRole = Literal["mx", "mailstore", "db", "web", "loadbalancer", "internet"]
GROUPS: tuple[InventoryRole, ...] = (*ROLES, "loadbalancer", "internet")
"""pyinfra groups: the platform's roles, then two that only the lab has as hosts (in production
Hetzner's load balancers and the real internet play them)."""


@functools.cache
def load_settings(settings_file: str | None, stack: str):
    """The settings file if given (a lab's re-based settings), else stacks/Pulumi.<stack>.yaml."""
    from mailstack.settings import Settings, load_stack_file

    if settings_file:
        return Settings.model_validate_json(Path(settings_file).read_text())
    return load_stack_file(Path(__file__).resolve().parents[1] / f"stacks/Pulumi.{stack}.yaml")


class InventoryHost(Model):
    """One host and how to reach it."""

    name: str = Field(description="Host name, also the pyinfra host name.")
    roles: list[InventoryRole] = Field(min_length=1, description="Roles this host carries.")
    private_ip: IPv4Address = Field(description="Address on the private network.")
    public_ipv4: IPv4Address | None = Field(None, description="Public IPv4 address, if any.")
    public_ipv6: IPv6Address | None = Field(None, description="Public IPv6 address, if any.")
    ssh_address: str = Field(description="Address pyinfra and testinfra connect to over SSH.")


class LoadBalancerAddress(Model):
    """Where one load balancer answers."""

    name: str = Field(description="Load balancer name.")
    purpose: str = Field(description="'smtp', 'mailaccess' or 'http'.")
    private_ip: IPv4Address = Field(description="Address on the private network.")
    public_ipv4: IPv4Address | None = Field(None, description="Public IPv4 address.")
    public_ipv6: IPv6Address | None = Field(None, description="Public IPv6 address.")


class InventoryVolume(Model):
    """One Hetzner volume: how its server sees it, and its home."""

    name: str = Field(description="Volume name (`plan_volumes`).")
    id: int = Field(ge=1, description="Hetzner's volume id.")
    linux_device: str = Field(
        description="The device path in the server it is attached to "
        "(/dev/disk/by-id/scsi-0HC_Volume_<id>).",
        pattern=r"^/dev/disk/by-id/scsi-0HC_Volume_[0-9]+$",
    )
    server: str = Field(
        description="The host it belongs to: where it is first attached, and where an mx "
        "queue volume returns after a takeover."
    )


class Inventory(Model):
    """All hosts of one environment."""

    stack: str = Field(description="Stack whose settings describe it (stacks/Pulumi.<stack>.yaml).")
    environment: str = Field(description="Environment name.")
    ssh_user: str = Field("root", description="User pyinfra logs in as.")
    ssh_key_file: str | None = Field(
        None, description="Private key to log in with (the lab's); None uses the SSH agent."
    )
    settings_file: str | None = Field(
        None,
        description="JSON file with the settings the hosts run with, when they differ from "
        "stacks/Pulumi.<stack>.yaml (a lab's: its own address range and SSH key).",
    )
    lab_file: str | None = Field(
        None, description="The lab's state (lab-only settings and addresses); None outside the lab."
    )
    hosts: list[InventoryHost] = Field(description="Every host, in a stable order.")
    load_balancers: list[LoadBalancerAddress] = Field(
        default_factory=list, description="The load balancers' addresses."
    )
    volumes: list[InventoryVolume] = Field(
        default_factory=list, description="The environment's volumes (`plan_volumes`)."
    )

    def with_role(self, role: InventoryRole) -> list[InventoryHost]:
        return [host for host in self.hosts if role in host.roles]

    def host(self, name: str) -> InventoryHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def volume(self, name: str) -> InventoryVolume:
        for volume in self.volumes:
            if volume.name == name:
                return volume
        raise KeyError(name)

    def settings(self):
        """The settings the hosts run with."""
        return load_settings(self.settings_file, self.stack)

    def pyinfra_groups(self) -> dict[str, list[tuple[str, dict]]]:
        """Groups by role, each host as (name, host data) for a pyinfra inventory file; pyinfra
        connects to the host's ssh_address (`ssh_hostname`) and names it by its host name.

        Every platform role is a group, empty or not; the lab-only groups exist where they have hosts.
        """
        groups: dict[str, list[tuple[str, dict]]] = {}
        for role in GROUPS:
            if role not in ROLES and not self.with_role(role):
                continue
            groups[role] = [(host.name, self.host_data(host)) for host in self.with_role(role)]
        return groups

    def host_data(self, host: InventoryHost) -> dict:
        data = {
            # The whole contract, so roles read every fact about other hosts from it
            # (mailstack.deploy.deployment.Deployment.for_host).
            "inventory_contract": self.model_dump_json(),
            "name": host.name,
            "roles": list(host.roles),
            "private_ip": str(host.private_ip),
            "stack": self.stack,
            "ssh_user": self.ssh_user,
            "ssh_hostname": host.ssh_address,
        }
        for key in ("settings_file", "lab_file"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        if self.ssh_key_file:
            data["ssh_key"] = self.ssh_key_file
            # Lab hosts are recreated often; their host keys are not worth pinning.
            data["ssh_known_hosts_file"] = "/dev/null"
            data["ssh_strict_host_key_checking"] = "no"
        return data

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> "Inventory":
        return cls.model_validate(json.loads(Path(path).read_text()))


def planned_inventory(settings, stack: str) -> Inventory:
    """The inventory the settings plan, with no hosts to reach (public addresses unknown) and
    stand-in volume ids (stable per stack and name, as the lab's): what tests render templates
    for without a lab or a cloud."""
    from mailstack.lab.volumes import DEVICE_PREFIX, resource_id
    from mailstack.settings.plan import plan_hosts, plan_load_balancers, plan_volumes

    hosts = plan_hosts(settings)

    return Inventory(
        stack=stack,
        environment=settings.environment.name,
        hosts=[
            InventoryHost(
                name=host.name,
                roles=list(host.roles),
                private_ip=host.private_ip,
                ssh_address=str(host.private_ip),
            )
            for host in hosts
        ],
        load_balancers=[
            LoadBalancerAddress(name=lb.name, purpose=lb.purpose, private_ip=lb.private_ip)
            for lb in plan_load_balancers(settings)
        ],
        volumes=[
            InventoryVolume(
                name=plan.name,
                id=resource_id(stack, "volume", plan.name),
                linux_device=f"{DEVICE_PREFIX}{resource_id(stack, 'volume', plan.name)}",
                server=plan.server,
            )
            for plan in plan_volumes(settings, hosts)
        ],
    )


def _stack_output(stack: str, name: str, cwd: str | Path, secret: bool = False):
    import subprocess

    command = ["pulumi", "stack", "output", name, "--json", "--stack", stack]
    if secret:
        command.append("--show-secrets")
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        raise RuntimeError(
            f"pulumi stack output {name} failed for stack {stack!r}: {result.stderr.strip()}"
        )
    return json.loads(result.stdout)


def from_pulumi_stack(stack: str, cwd: str | Path = ".") -> Inventory:
    """The `inventory` output of a Pulumi stack (needs the Pulumi CLI and the stack's backend)."""
    return Inventory.model_validate(_stack_output(stack, "inventory", cwd))


def failover_token_from_stack(stack: str, cwd: str | Path = ".") -> str:
    """The stack's secret output `failover_api_token` (the Pulumi secret
    `mailstack:failover_api_token`), decrypted: the Hetzner API token the clusters' fence and
    volume agents use. Raises RuntimeError when the stack has none."""
    return _stack_output(stack, "failover_api_token", cwd, secret=True)
