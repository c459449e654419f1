"""The lab's package cache: apt-cacher-ng on the bridge address, the hosts' only way out.

Each lab runs its own instance (own configuration, socket and cache directory) because two
instances must not share one cache directory. The cache outlives the lab under /var/cache so the
next lab of that name installs packages without downloading them again.
"""

import shutil
from ipaddress import IPv4Address
from pathlib import Path

from mailstack.lab.system import Cgroup, start_listener

CACHE = Path("/var/cache/mailstack/apt-cacher-ng")


def cgroup(lab: str) -> Cgroup:
    return Cgroup(lab, "apt-cache")


def start(lab: str, address: IPv4Address, port: int, runtime: Path) -> None:
    """Start the lab's apt-cacher-ng unless it runs; return once it accepts connections."""
    group = cgroup(lab)
    if group.populated():
        return
    config = runtime / "apt-cacher-ng"
    logs = config / "log"
    logs.mkdir(parents=True, exist_ok=True)
    cache = CACHE / lab
    cache.mkdir(parents=True, exist_ok=True)
    (config / "acng.conf").write_text(
        f"""CacheDir: {cache}
LogDir: {logs}
SupportDir: /usr/lib/apt-cacher-ng
Port: {port}
BindAddress: {address}
SocketPath: {config}/socket
PidFile: {config}/pid
# Proxy for whatever the hosts ask for: their sources name the real Debian mirror.
PassThroughPattern: .*
ExThreshold: 4
"""
    )
    start_listener(
        ["apt-cacher-ng", "-c", str(config), "ForeGround=1"],
        group,
        logs / "console.log",
        address,
        port,
        "apt-cacher-ng",
    )


def stop(lab: str) -> None:
    group = cgroup(lab)
    group.kill()
    group.remove()
    # A lab that never installed a package leaves no empty cache behind.
    cache = CACHE / lab
    if cache.is_dir() and not any(path.is_file() for path in cache.rglob("*")):
        shutil.rmtree(cache)
