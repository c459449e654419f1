"""The volumes' filesystems (mailstack.services.volumes): a blank volume formatted once, the
volumes that stay with their host mounted at boot, and every service that keeps its data on a
volume held back until its data path is mounted.

Runs before the services' packages, so a fresh host's data is created on the volume. The
volumes a failover cluster moves are mounted by the cluster (roles/pacemaker.py).
"""

from pyinfra import host
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from mailstack.deploy.kit import install, target
from mailstack.facts import VolumeContent
from mailstack.services import volumes

deployment, me = target()

for device in volumes.blank_volumes(deployment, me):
    # Only a blank volume: one that holds anything (or is attached elsewhere) is left alone.
    if host.get_fact(VolumeContent, device=device) == "":
        server.shell(
            name=f"Format the blank volume {device}",
            commands=[f"mkfs.{volumes.FILESYSTEM} -q {device}"],
        )

installed = [install(config, "volumes") for config in volumes.config_files(deployment, me)]
systemd.daemon_reload(name="Load the volumes' units", _if=any_changed(*installed))
for mount in volumes.boot_mounts(deployment, me):
    if mount.bind:
        files.directory(name=f"Create {mount.what}", path=mount.what, mode="755")
    files.directory(name=f"Create the mount point {mount.where}", path=mount.where)
    systemd.service(name=f"Mount {mount.where}", service=mount.unit, running=True, enabled=True)
