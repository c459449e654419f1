"""The volumes' filesystems: where each volume is mounted, who mounts it, and which services
keep their data there.

Two kinds of volume:
- **Moved by a failover cluster**: the mailstore pair's mail volume (at Dovecot's mail root) and
  each mx node's queue volume (at Postfix's queue directory). Pacemaker attaches and mounts them
  where the cluster runs the service (`mailstack.services.pacemaker`); nothing mounts them at
  boot.
- **Staying with their host**: each db node's volume (at PostgreSQL's data root) and the single
  profile's one volume (at `SINGLE_ROOT`, its services' data paths bind-mounted from
  subdirectories). A systemd mount unit mounts them at boot, by the device path Hetzner gives
  (`/dev/disk/by-id/scsi-0HC_Volume_<id>`); the services are ordered after it.

Either way a service whose data lives on a volume refuses to start while its data path is not
a mount point (`GUARDED`), so it never writes to the root disk instead; and a volume that is
blank (no filesystem, no partition table, zeros at its start) is formatted ext4 once, on the host
it is attached to (roles/volumes.py). Hetzner's `format: ext4` and the lab format them when they
are created, so in practice this happens only to a volume made by hand.
"""

from dataclasses import dataclass

from mailstack.deploy.configfile import ConfigFile
from mailstack.services import dovecot, patroni

FILESYSTEM = "ext4"
MOUNT_OPTIONS = "defaults,noatime"
"""noatime: reads of mail and queue files write nothing."""
QUEUE_DIRECTORY = "/var/spool/postfix"
"""Postfix's queue directory, where an mx node's own queue volume is mounted."""
DATABASE_DIRECTORY = "/var/lib/postgresql"
"""PostgreSQL's data root on the db nodes (clusters live in <root>/<version>/<name>); the db
volume is mounted here. The one place that says so: the database roles may move it."""
DATABASE_UNITS = ("postgresql@.service", f"{patroni.UNIT}.service")
"""The units that keep their data in DATABASE_DIRECTORY: Debian's PostgreSQL (the single
profile) and Patroni, which runs PostgreSQL itself on the db clusters' nodes."""
SINGLE_ROOT = "/srv/data"
"""The single profile's one volume; each service's data path is a directory of it."""


@dataclass(frozen=True)
class DataPath:
    """A service's data path that must be a mounted volume before the service starts."""

    path: str
    units: tuple[str, ...]
    """systemd units (a template's instances: `name@.service`) that keep data there."""
    owner: str | None = None
    """user:group the mount's root must belong to (set at each start), None: root's."""


GUARDED: dict[str, DataPath] = {
    "mail": DataPath(
        dovecot.MAIL_ROOT,
        ("dovecot.service",),
        owner=f"{dovecot.VMAIL_USER}:{dovecot.VMAIL_USER}",
    ),
    # The main Postfix instance only: a takeover instance runs on another mount point.
    "queue": DataPath(QUEUE_DIRECTORY, ("postfix.service",)),
    "database": DataPath(DATABASE_DIRECTORY, DATABASE_UNITS, owner="postgres:postgres"),
}
"""Each kind of data on a volume: where it is and which services keep it."""

_KINDS_OF_ROLE = {"mailstore": ("mail",), "mx": ("queue",), "db": ("database",), "web": ()}


@dataclass(frozen=True)
class BootMount:
    """A filesystem mounted at boot by a systemd mount unit."""

    what: str
    """The device (or, for a bind mount, the directory) mounted."""
    where: str
    bind: bool = False

    @property
    def unit(self) -> str:
        return unit_name(self.where)


def systemd_escape(value: str) -> str:
    """A string as systemd escapes it for a unit name (systemd-escape): what a template
    unit's %I gives back unescaped, e.g. `postfix@lab\\x2dmx1` for instance `lab-mx1`."""
    parts = []
    for index, character in enumerate(value):
        if character == "/":
            parts.append("-")
        elif (character.isascii() and (character.isalnum() or character in ":_")) or (
            character == "." and index > 0
        ):
            parts.append(character)
        else:
            parts.append(f"\\x{ord(character):02x}")
    return "".join(parts)


def unit_name(path: str) -> str:
    """systemd's mount unit name for a path (systemd-escape --path --suffix=mount)."""
    return systemd_escape(path.strip("/")) + ".mount"


def kinds(host) -> list[str]:
    """The kinds of data (keys of GUARDED) a host keeps on volumes."""
    return [kind for role in host.roles for kind in _KINDS_OF_ROLE[role]]


def boot_mounts(deployment, host) -> list[BootMount]:
    """The host's mounts at boot: a db node's volume, or the single profile's volume with the
    data paths of its roles bind-mounted from it. None where a cluster mounts (mx, mailstore)."""
    volume = deployment.data_volume(host)
    if volume is None:
        return []
    if deployment.settings.topology.profile == "single":
        return [BootMount(volume.linux_device, SINGLE_ROOT)] + [
            BootMount(f"{SINGLE_ROOT}/{kind}", GUARDED[kind].path, bind=True)
            for kind in kinds(host)
        ]
    if "db" in host.roles:
        return [BootMount(volume.linux_device, DATABASE_DIRECTORY)]
    return []


def blank_volumes(deployment, host) -> list[str]:
    """Devices of the volumes this host would format if it finds them blank: those that belong
    to it (its data volume, the first mailstore node's mail volume)."""
    return [volume.linux_device for volume in deployment.volumes_of(host)]


def config_files(deployment, host) -> list[ConfigFile]:
    mounts = boot_mounts(deployment, host)
    mounted = {mount.where for mount in mounts}
    files = [
        ConfigFile(
            path=f"/etc/systemd/system/{mount.unit}",
            source="volumes/etc/systemd/system/volume.mount.j2",
            context={
                "what": mount.what,
                "where": mount.where,
                "type": "none" if mount.bind else FILESYSTEM,
                "options": "bind" if mount.bind else MOUNT_OPTIONS,
            },
            effect="none",
        )
        for mount in mounts
    ]
    for kind in kinds(host):
        data = GUARDED[kind]
        for unit in data.units:
            files.append(
                ConfigFile(
                    path=f"/etc/systemd/system/{unit}.d/mailstack-volume.conf",
                    source="volumes/etc/systemd/system/service.d/mailstack-volume.conf.j2",
                    context={
                        "path": data.path,
                        "owner": data.owner,
                        "at_boot": data.path in mounted,
                    },
                    effect="none",
                )
            )
    return files
