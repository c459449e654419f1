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

    def with_role(self, role: InventoryRole) -> list[InventoryHost]:
        return [host for host in self.hosts if role in host.roles]

    def host(self, name: str) -> InventoryHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def settings(self):
        """The settings the hosts run with."""
        return load_settings(self.settings_file, self.stack)

    def pyinfra_groups(self) -> dict[str, list[tuple[str, dict]]]:
        """Groups by role, each host as (ssh address, host data) for a pyinfra inventory file.

        Every platform role is a group, empty or not; the lab-only groups exist where they have hosts.
        """
        groups: dict[str, list[tuple[str, dict]]] = {}
        for role in GROUPS:
            if role not in ROLES and not self.with_role(role):
                continue
            groups[role] = [
                (host.ssh_address, self.host_data(host)) for host in self.with_role(role)
            ]
        return groups

    def host_data(self, host: InventoryHost) -> dict:
        data = {
            "name": host.name,
            "roles": list(host.roles),
            "private_ip": str(host.private_ip),
            "stack": self.stack,
            "ssh_user": self.ssh_user,
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


def from_pulumi_stack(stack: str, cwd: str | Path = ".") -> Inventory:
    """The `inventory` output of a Pulumi stack (needs the Pulumi CLI and the stack's backend)."""
    import subprocess

    result = subprocess.run(
        ["pulumi", "stack", "output", "inventory", "--json", "--stack", stack],
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"pulumi stack output failed for stack {stack!r}: {result.stderr.strip()}"
        )
    return Inventory.model_validate(json.loads(result.stdout))
