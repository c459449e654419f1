"""The machine the lab runs on: preconditions, commands, cgroups and mounts."""

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_TOP = "mailstack-lab"
"""Every lab's cgroups live under this one, per lab and per host: mailstack-lab/<lab>/<host>."""

TOOLS = {
    "systemd-nspawn": "systemd-container",
    "mmdebstrap": "mmdebstrap",
    "apt-cacher-ng": "apt-cacher-ng",
    "nft": "nftables",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "losetup": "mount",
    "mkfs.ext4": "e2fsprogs",
}


class LabError(Exception):
    """The lab cannot do what was asked; the message says why and what to do."""


def run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, input=input)
    if check and result.returncode != 0:
        raise LabError(f"`{' '.join(args)}` failed: {(result.stderr or result.stdout).strip()}")
    return result


def check_preconditions() -> None:
    """Fail early, with the fix named, when the machine cannot run a lab."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates bridges, mounts and cgroups): run as root")
    missing = sorted({package for tool, package in TOOLS.items() if not shutil.which(tool)})
    if missing:
        raise LabError(
            f"missing tools from Debian packages {', '.join(missing)}: run `make host-packages`"
        )
    if "overlay" not in Path("/proc/filesystems").read_text():
        raise LabError("kernel feature missing: overlayfs (each host's root is an overlay)")
    unified = unified_hierarchy()
    if unified is None:
        raise LabError("kernel feature missing: no cgroup v2 hierarchy mounted")
    # Abrupt kills and freezes need cgroup.kill (Linux 5.14) and cgroup.freeze (5.2), which
    # only non-root cgroups show.
    probe = unified / CGROUP_TOP
    created = not probe.exists()
    probe.mkdir(exist_ok=True)
    missing = [name for name in ("cgroup.kill", "cgroup.freeze") if not (probe / name).exists()]
    if created:
        with contextlib.suppress(OSError):
            probe.rmdir()
    if missing:
        raise LabError(f"kernel feature missing: {' and '.join(missing)} (Linux 5.14 or later)")
    result = run("nft", "list", "tables", check=False)
    if result.returncode != 0:
        raise LabError(f"kernel feature missing: nftables ({result.stderr.strip()})")


def _fs_type(path: Path) -> str | None:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[1] == str(path):
            return fields[2]
    return None


def unified_hierarchy() -> Path | None:
    """The cgroup v2 mount: /sys/fs/cgroup/unified on hybrid machines, else /sys/fs/cgroup."""
    for path in (CGROUP_ROOT / "unified", CGROUP_ROOT):
        if _fs_type(path) == "cgroup2":
            return path
    return None


def hierarchies() -> list[Path]:
    """Every hierarchy a host's processes join: v2, plus v1's systemd, memory and devices where
    mounted.

    systemd-nspawn expects its own cgroup in each hierarchy the container's systemd uses, the v1
    memory controller is where a hybrid machine accounts memory per host, and the v1 devices
    controller decides which block devices (the lab's volumes) a host may open.
    """
    found = [unified_hierarchy()]
    for name in ("systemd", "memory", "devices"):
        path = CGROUP_ROOT / name
        if _fs_type(path) == "cgroup":
            found.append(path)
    return [path for path in found if path is not None]


class Cgroup:
    """One cgroup, by relative path, present in every hierarchy."""

    def __init__(self, *parts: str):
        self.relative = Path(CGROUP_TOP, *parts)

    def paths(self) -> list[Path]:
        return [root / self.relative for root in hierarchies()]

    @property
    def v2(self) -> Path:
        return unified_hierarchy() / self.relative

    def create(self) -> None:
        for path in self.paths():
            path.mkdir(parents=True, exist_ok=True)

    def enter(self) -> None:
        """Move the calling process in (used between fork and exec of a host's supervisor)."""
        for path in self.paths():
            (path / "cgroup.procs").write_text("0")

    def populated(self) -> bool:
        events = self.v2 / "cgroup.events"
        return events.exists() and "populated 1" in events.read_text()

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL every process inside, at once, and wait until they are gone."""
        if not self.v2.exists():
            return
        (self.v2 / "cgroup.kill").write_text("1")
        deadline = time.monotonic() + timeout
        while self.populated():
            if time.monotonic() > deadline:
                raise LabError(f"processes in cgroup {self.relative} survived SIGKILL")
            time.sleep(0.05)

    def freeze(self, frozen: bool, timeout: float = 10.0) -> None:
        (self.v2 / "cgroup.freeze").write_text("1" if frozen else "0")
        want = f"frozen {int(frozen)}"
        deadline = time.monotonic() + timeout
        while want not in (self.v2 / "cgroup.events").read_text():
            if time.monotonic() > deadline:
                raise LabError(f"cgroup {self.relative} did not become {want}")
            time.sleep(0.05)

    def frozen(self) -> bool:
        events = self.v2 / "cgroup.events"
        return events.exists() and "frozen 1" in events.read_text()

    def memory_bytes(self) -> int | None:
        """Memory the processes inside use, from v2 or (hybrid machines) v1's memory controller."""
        for file in (
            self.v2 / "memory.current",
            CGROUP_ROOT / "memory" / self.relative / "memory.usage_in_bytes",
        ):
            if file.exists():
                return int(file.read_text())
        return None

    def remove(self) -> None:
        """Remove the (empty) cgroup and everything below it, in every hierarchy."""
        for path in self.paths():
            if not path.exists():
                continue
            for directory in sorted(
                (p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
            ):
                directory.rmdir()
            path.rmdir()
        # The shared parents go too once their last lab is gone.
        for parent in list(self.relative.parents)[:-1]:
            for root in hierarchies():
                directory = root / parent
                # Another lab may be creating its cgroup here right now: then it stays.
                with contextlib.suppress(OSError):
                    directory.rmdir()


def start_listener(
    command: list[str], group: Cgroup, log: Path, address, port: int, what: str
) -> None:
    """Start a lab service on the machine in its own cgroup, output to `log`; return once it
    accepts connections on address:port (15 s at most; else LabError with the log's tail)."""
    group.create()
    with open(log, "ab") as output:
        subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=group.enter,
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection((str(address), port), timeout=0.5).close()
            return
        except OSError:
            if not group.populated():
                break
            time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:]
    raise LabError(f"{what} did not start on {address}:{port}:\n{tail}")


def is_mountpoint(path: Path) -> bool:
    return _fs_type(path) is not None


def mount_overlay(lower: Path, upper: Path, work: Path, target: Path) -> None:
    if is_mountpoint(target):
        return
    for directory in (upper, work, target):
        directory.mkdir(parents=True, exist_ok=True)
    run(
        "mount",
        "-t",
        "overlay",
        "overlay",
        "-o",
        f"lowerdir={lower},upperdir={upper},workdir={work}",
        str(target),
    )


def unmount(target: Path) -> None:
    for _ in range(50):
        if not is_mountpoint(target):
            return
        if run("umount", str(target), check=False).returncode == 0:
            continue
        time.sleep(0.1)
    raise LabError(f"cannot unmount {target}: still busy")


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
MINIMUM_INOTIFY_INSTANCES = 4096


def raise_inotify_limit() -> None:
    """Every host's systemd holds inotify instances of root's; the kernel's default of 128 runs
    out at about two labs, and path units then fail. Raised only, never lowered."""
    if int(INOTIFY_INSTANCES.read_text()) < MINIMUM_INOTIFY_INSTANCES:
        INOTIFY_INSTANCES.write_text(str(MINIMUM_INOTIFY_INSTANCES))


NSPAWN_RUNTIME = Path("/run/systemd/nspawn")


def ensure_nspawn_runtime() -> None:
    """systemd-nspawn keeps per-machine files under /run/systemd/nspawn; with no systemd on the
    machine nothing provides that directory, so the lab mounts a tmpfs there."""
    if not is_mountpoint(NSPAWN_RUNTIME):
        NSPAWN_RUNTIME.mkdir(parents=True, exist_ok=True)
        run("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(NSPAWN_RUNTIME))


def release_nspawn_runtime() -> None:
    """Unmount the tmpfs once no lab is left (another lab may still use it)."""
    top = unified_hierarchy() / CGROUP_TOP
    if top.exists() and any(p.is_dir() for p in top.iterdir()):
        return
    if is_mountpoint(NSPAWN_RUNTIME):
        unmount(NSPAWN_RUNTIME)


def boot_container(
    root: Path, machine: str, hostname: str, bridge: str, console_log: Path, group: "Cgroup"
) -> None:
    """Boot the directory `root` as a container with systemd-nspawn, in `group`, its veth on
    `bridge`, its console appended to `console_log`. Returns once nspawn runs (not the init)."""
    command = [
        "systemd-nspawn",
        "--quiet",
        f"--directory={root}",
        f"--machine={machine}",
        f"--hostname={hostname}",
        "--boot",
        "--register=no",
        "--keep-unit",
        "--console=read-only",
        f"--network-bridge={bridge}",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
        "--",
        "--show-status=yes",
    ]
    with open(console_log, "ab") as console:
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
