"""What a lab was created with and which faults are in force: `.lab/<name>/lab.json`."""

import contextlib
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from pydantic import Field

from mailstack.lab import network
from mailstack.lab.settings import LabSettings
from mailstack.lab.system import LabError
from mailstack.settings.base import Model


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


def allocate_subnet(
    name: str, own: IPv4Network, lab: LabSettings, state_root: Path, bridge: str
) -> IPv4Network:
    """The stack's subnet `own` for the default lab; else the first /24 of the lab's address
    pool that no lab under `state_root` holds and no interface of the machine uses. Raises
    LabError when the pool is used up."""
    if name == lab.default_name:
        return own
    taken = {own}
    for other in state_root.glob("*/lab.json"):
        with contextlib.suppress(ValueError, OSError):
            taken.add(LabState.read(other).subnet)
    for candidate in lab.address_pool.subnets(new_prefix=24):
        if candidate in taken or network.addresses_in_use(candidate, bridge):
            continue
        return candidate
    raise LabError(f"no free /24 left in {lab.address_pool} for lab {name}")


def foreign_owner(owner_file: Path, state_dir: Path) -> str | None:
    """The state directory of another checkout that runs this lab, if any: lab names are
    machine-wide (bridge, cgroups, disks), state directories are per checkout."""
    if not owner_file.exists():
        return None
    owner = owner_file.read_text()
    return None if owner == str(state_dir) else owner
