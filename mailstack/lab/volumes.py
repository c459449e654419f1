"""The lab's Hetzner Volumes: sparse files handed into hosts as block devices.

The lab has the volumes production has (`mailstack.topology.plan_volumes`). Each is a sparse file
of the planned size under `/var/lib/mailstack/lab/<lab>/volumes/`, formatted ext4 when it is
created, as Hetzner formats a volume created with `format: ext4`. Attaching a volume to a host
binds a loop device to the file, allows that device in the host's v1 devices cgroup and creates
its node inside the host at Hetzner's stable path, `/dev/disk/by-id/scsi-0HC_Volume_<id>`;
detaching undoes all three. Every attachment gets a loop device of its own, as a disk plugged in
again is a new device to a kernel: a host that kept the filesystem mounted after a detach (a yanked
disk) holds the old device and shares nothing with the next host's mount.

Which host a volume is attached to is kept in `attachments.json` beside the files. A host that
boots gets a new /dev from systemd-nspawn and a new cgroup from the lab, so the lab applies its
attachments again on every start (`grant` before the host's supervisor starts, `hand_in` once its
init runs). Hosts have no udev: the node is made directly, and nothing in a host may wait for a
systemd device unit of the volume.
"""

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import struct
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailstack.inventory import InventoryVolume
from mailstack.lab.system import CGROUP_ROOT, Cgroup, LabError, run
from mailstack.settings.plan import plan_hosts, plan_volumes

DEVICE_PREFIX = "/dev/disk/by-id/scsi-0HC_Volume_"
"""Where a Hetzner volume appears in its server, followed by the volume's id."""

DEVICES_HIERARCHY = CGROUP_ROOT / "devices"
DISK_GROUP = 6
"""Debian's fixed gid of group `disk`, which owns block devices."""

EXT4_IOC_SHUTDOWN = 0x8004587D
"""_IOR('X', 125, __u32): the filesystem stops all I/O at once (XFS_IOC_GOINGDOWN is the same)."""
EXT4_GOING_FLAGS_NOLOGFLUSH = 2
"""Do not write the journal first: what the journal has not committed is lost, as in a crash."""


class VolumeError(LabError):
    """A volume cannot be attached or detached as asked; the message says why."""


def resource_id(lab: str, kind: str, name: str) -> int:
    """A stable positive id for one of the lab's servers, volumes or networks (eight digits, like
    Hetzner's), the same for a name of the same lab every time."""
    digest = hashlib.sha256(f"{lab}/{kind}/{name}".encode()).digest()
    return 10_000_000 + int.from_bytes(digest[:8], "big") % 90_000_000


@dataclass(frozen=True)
class LabVolume:
    """One of the lab's volumes."""

    name: str
    id: int
    size_gb: int
    first_server: str
    """The host it is attached to when created."""
    path: Path
    """The sparse file that holds its blocks."""

    @property
    def linux_device(self) -> str:
        return f"{DEVICE_PREFIX}{self.id}"

    @property
    def size_bytes(self) -> int:
        return self.size_gb * 2**30


@dataclass(frozen=True)
class Attachment:
    """A volume's attachment: the host and the loop device that carries it there."""

    server: str
    device: str

    @property
    def number(self) -> tuple[int, int]:
        """The loop device's major and minor number."""
        rdev = os.stat(self.device).st_rdev
        return os.major(rdev), os.minor(rdev)


def lab_volumes(lab: str, settings, directory: Path) -> list[LabVolume]:
    """A lab's volumes, planned from its settings, their files in `directory`."""
    volumes = [
        LabVolume(
            name=plan.name,
            id=resource_id(lab, "volume", plan.name),
            size_gb=plan.size_gb,
            first_server=plan.server,
            path=directory / f"{plan.name}.img",
        )
        for plan in plan_volumes(settings, plan_hosts(settings))
    ]
    if len({volume.id for volume in volumes}) != len(volumes):
        raise LabError(f"lab {lab}: two volumes got the same id; rename the lab")
    return volumes


def inventory_volumes(volumes: list[LabVolume]) -> list[InventoryVolume]:
    """The volumes as the inventory contract lists them."""
    return [
        InventoryVolume(
            name=volume.name,
            id=volume.id,
            linux_device=volume.linux_device,
            server=volume.first_server,
        )
        for volume in volumes
    ]


def loop_devices() -> dict[str, str]:
    """Every bound loop device of the machine and its backing file (' (deleted)' when unlinked)."""
    listing = run("losetup", "--list", "--json", "--output", "NAME,BACK-FILE").stdout
    devices = json.loads(listing or '{"loopdevices": []}')["loopdevices"]
    return {device["name"]: device["back-file"] or "" for device in devices}


def _unescape(field: str) -> str:
    """A path from /proc/<pid>/mountinfo, where space, tab, newline and backslash are octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


class Volumes:
    """The volumes of one lab (`Lab.volumes`)."""

    def __init__(self, lab):
        self.lab = lab
        self.directory = lab.runtime / "volumes"
        self.state_file = self.directory / "attachments.json"

    # --- what exists ---------------------------------------------------------------------------

    def all(self) -> list["LabVolume"]:
        """The lab's volumes, as planned from its stack (names and sizes as in production)."""
        return lab_volumes(self.lab.name, self.lab.stack_settings, self.directory)

    def get(self, name: str) -> LabVolume:
        for volume in self.all():
            if volume.name == name:
                return volume
        raise VolumeError(f"lab {self.lab.name} has no volume {name!r}")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict]:
        """The attachment state, read under the lab's volume lock and written back on success."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._read()
            yield state
            temporary = self.state_file.with_suffix(".tmp")
            temporary.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
            temporary.replace(self.state_file)

    def _read(self) -> dict:
        if self.state_file.exists():
            return json.loads(self.state_file.read_text())
        return {"created": datetime.now(UTC).isoformat(timespec="seconds"), "attachments": {}}

    def created(self) -> str:
        """When the lab's volumes were created (ISO 8601), which is when its servers were."""
        return self._read()["created"]

    def attachments(self) -> dict[str, Attachment | None]:
        """Each volume's attachment, None for a detached volume."""
        recorded = self._read()["attachments"]
        return {
            volume.name: Attachment(**recorded[volume.name]) if recorded.get(volume.name) else None
            for volume in self.all()
        }

    def attached_to(self, server: str) -> list[tuple[LabVolume, Attachment]]:
        attachments = self.attachments()
        return [
            (volume, attachments[volume.name])
            for volume in self.all()
            if attachments[volume.name] and attachments[volume.name].server == server
        ]

    # --- the lab's life --------------------------------------------------------------------------

    def create(self) -> None:
        """Create missing volumes (sparse, formatted ext4) attached to their first hosts, and bind
        a loop device to every attached volume that has none (idempotent)."""
        with self._locked() as state:
            for volume in self.all():
                if not volume.path.exists():
                    partial = volume.path.with_suffix(".new")
                    with open(partial, "wb") as handle:
                        handle.truncate(volume.size_bytes)
                    # The file is sparse, so the journal reads as zeros without being written.
                    run(
                        "mkfs.ext4",
                        "-q",
                        "-F",
                        "-E",
                        "lazy_itable_init=1,lazy_journal_init=1",
                        str(partial),
                    )
                    partial.replace(volume.path)
                    state["attachments"][volume.name] = {
                        "server": volume.first_server,
                        "device": "",
                    }
                record = state["attachments"].get(volume.name)
                if record and not self._bound(record["device"], volume):
                    record["device"] = self._bind(volume)

    def release(self) -> None:
        """Unbind every loop device of the lab's volume files (when the lab goes; its hosts are
        gone, so nothing holds them)."""
        for device in self._devices_of_lab():
            run("losetup", "--detach", device, check=False)

    def leftovers(self) -> list[str]:
        return [f"loop device {device}" for device in self._devices_of_lab()]

    def _devices_of_lab(self) -> list[str]:
        marker = f"{self.directory}/"
        return sorted(name for name, file in loop_devices().items() if file.startswith(marker))

    def _bound(self, device: str, volume: LabVolume) -> bool:
        return bool(device) and loop_devices().get(device) == str(volume.path)

    def _bind(self, volume: LabVolume) -> str:
        return run("losetup", "--find", "--show", str(volume.path)).stdout.strip()

    # --- attach and detach -----------------------------------------------------------------------

    def attach(self, name: str, host) -> Attachment:
        """Attach a detached volume to a host, running or not; a running host gets the device at
        once. Raises VolumeError when the volume is attached (to any host)."""
        volume = self.get(name)
        with self._locked() as state:
            record = state["attachments"].get(volume.name)
            if record:
                raise VolumeError(
                    f"volume {volume.name} is already attached to {record['server']}; detach it first"
                )
            attachment = Attachment(server=host.name, device=self._bind(volume))
            state["attachments"][volume.name] = asdict(attachment)
        if self.lab.running(host):
            self._allow(host, attachment)
            self._make_node(self.init_pid(host), volume, attachment)
        return attachment

    def detach(self, name: str, host) -> Attachment:
        """Detach a volume from the host it is attached to, running or not. A filesystem the host
        still has mounted on it is shut down first, as pulling the disk leaves it: every later
        I/O fails. Raises VolumeError when the volume is not attached to that host."""
        volume = self.get(name)
        with self._locked() as state:
            record = state["attachments"].get(volume.name)
            if not record or record["server"] != host.name:
                where = f"attached to {record['server']}" if record else "not attached"
                raise VolumeError(f"volume {volume.name} is {where}, not to {host.name}")
            attachment = Attachment(**record)
            state["attachments"][volume.name] = None
            if self.lab.running(host):
                self.shut_down_filesystems(host, devices={attachment.device})
                self._remove_node(self.init_pid(host), volume)
                self._deny(host, attachment)
            # A device still held (the yanked disk's mount) is freed when its last user goes.
            run("losetup", "--detach", attachment.device, check=False)
        return attachment

    # --- hosts starting and stopping ---------------------------------------------------------

    def grant(self, host) -> None:
        """Before a host's supervisor starts in its new cgroup: allow character devices (what
        systemd-nspawn sets up) and exactly the volumes attached to the host, no other block
        device."""
        group = self._devices_group(host)
        (group / "devices.deny").write_text("a")
        (group / "devices.allow").write_text("c *:* rwm")
        for _, attachment in self.attached_to(host.name):
            self._allow(host, attachment)

    def hand_in(self, host, timeout: float = 30.0) -> None:
        """Once a starting host's init runs: create the nodes of its attached volumes in its
        /dev (waits for the init at most `timeout` seconds)."""
        attached = self.attached_to(host.name)
        if attached:
            init = self.init_pid(host, timeout)
            for volume, attachment in attached:
                self._make_node(init, volume, attachment)

    def shut_down_filesystems(self, host, devices: set[str] | None = None) -> list[str]:
        """Shut down every filesystem on the lab's volumes (or on `devices`) that the host has
        mounted, with EXT4_IOC_SHUTDOWN and no log flush: what its journal has not committed is
        lost and the next mount replays the journal, as after a crash. Returns the mount points
        (in the host) it shut down."""
        if devices is None:
            devices = set(self._devices_of_lab())
        wanted = {os.stat(device).st_rdev: device for device in devices if Path(device).exists()}
        done: set[int] = set()
        shut: list[str] = []
        for pid in self._pids(host):
            with contextlib.suppress(OSError):
                mountinfo = Path(f"/proc/{pid}/mountinfo").read_text()
                for line in mountinfo.splitlines():
                    fields = line.split()
                    major, minor = (int(n) for n in fields[2].split(":"))
                    rdev = os.makedev(major, minor)
                    if rdev not in wanted or rdev in done:
                        continue
                    mount_point = _unescape(fields[4])
                    if self._shut_down(pid, mount_point, rdev):
                        done.add(rdev)
                        shut.append(mount_point)
        return shut

    def mounted(self, host) -> dict[str, list[str]]:
        """The lab's volumes the host has mounted (volume name -> mount points in the host),
        read on the machine from its init's mount table; empty for a host that does not run."""
        try:
            return self.mounted_by(self.init_pid(host, timeout=0))
        except LabError:
            return {}

    def mounted_by(self, pid: int) -> dict[str, list[str]]:
        """The lab's volumes mounted in the mount namespace of a process of the machine."""
        by_device = {volume.linux_device: volume.name for volume in self.all()}
        found: dict[str, list[str]] = {}
        try:
            mountinfo = Path(f"/proc/{pid}/mountinfo").read_text()
        except OSError:
            return found
        for line in mountinfo.splitlines():
            fields = line.split()
            source = fields[fields.index("-") + 2]
            if source in by_device:
                found.setdefault(by_device[source], []).append(_unescape(fields[4]))
        return found

    def wait_released(self, host, timeout: float = 10.0) -> None:
        """After a host died: wait until no filesystem holds its volumes' devices any more, so
        the next mount reads the disk instead of a dying filesystem's state."""
        deadline = time.monotonic() + timeout
        for _, attachment in self.attached_to(host.name):
            while True:
                try:
                    os.close(os.open(attachment.device, os.O_RDONLY | os.O_EXCL))
                    break
                except OSError as error:
                    if error.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise LabError(
                            f"{attachment.device} of {host.name} still in use after it stopped"
                        ) from error
                    time.sleep(0.02)

    # --- the machine's side --------------------------------------------------------------------

    def _devices_group(self, host) -> Path:
        group = DEVICES_HIERARCHY / Cgroup(self.lab.name, host.name).relative
        if not (group / "devices.allow").exists():
            raise LabError(
                f"no devices cgroup {group}: the lab's volumes need cgroup v1's devices "
                "controller mounted at /sys/fs/cgroup/devices"
            )
        return group

    def _allow(self, host, attachment: Attachment) -> None:
        major, minor = attachment.number
        (self._devices_group(host) / "devices.allow").write_text(f"b {major}:{minor} rwm")

    def _deny(self, host, attachment: Attachment) -> None:
        major, minor = attachment.number
        (self._devices_group(host) / "devices.deny").write_text(f"b {major}:{minor} rwm")

    def _pids(self, host) -> list[int]:
        """Every process of the host (its supervisor included)."""
        top = Cgroup(self.lab.name, host.name).v2
        pids = []
        for procs in top.rglob("cgroup.procs") if top.exists() else []:
            with contextlib.suppress(OSError):
                pids += [int(pid) for pid in procs.read_text().split()]
        return pids

    def init_pid(self, host, timeout: float = 30.0) -> int:
        """The host's init (PID 1 inside), once it has replaced systemd-nspawn's child, whose
        /dev is then the one the host keeps. Raises LabError if the host stops or no init runs
        within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.lab.running(host):
                raise LabError(f"{host.name} is not running")
            for pid in self._pids(host):
                with contextlib.suppress(OSError):
                    status = Path(f"/proc/{pid}/status").read_text()
                    ns_pids = re.search(r"^NSpid:\s+(.*)$", status, re.M).group(1).split()
                    inside = len(ns_pids) > 1 and ns_pids[-1] == "1"
                    if inside and not os.readlink(f"/proc/{pid}/exe").endswith("systemd-nspawn"):
                        return pid
            if time.monotonic() > deadline:
                raise LabError(f"{host.name}: no init running after {timeout:.0f} s")
            time.sleep(0.02)

    def _make_node(self, init: int, volume: LabVolume, attachment: Attachment) -> None:
        node = Path(f"/proc/{init}/root{volume.linux_device}")
        node.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            node.unlink()
        os.mknod(node, stat.S_IFBLK | 0o660, os.makedev(*attachment.number))
        os.chown(node, 0, DISK_GROUP)
        os.chmod(node, 0o660)  # mknod's mode passes the umask

    def _remove_node(self, init: int, volume: LabVolume) -> None:
        with contextlib.suppress(FileNotFoundError):
            Path(f"/proc/{init}/root{volume.linux_device}").unlink()

    @staticmethod
    def _shut_down(pid: int, mount_point: str, rdev: int) -> bool:
        """EXT4_IOC_SHUTDOWN on the filesystem mounted at `mount_point` in the mount namespace of
        `pid`, if that path really is that device's filesystem (not something mounted over it)."""
        try:
            fd = os.open(f"/proc/{pid}/root{mount_point}", os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return False
        try:
            if os.fstat(fd).st_dev != rdev:
                return False
            flags = struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH)
            fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, flags)
            return True
        finally:
            os.close(fd)
