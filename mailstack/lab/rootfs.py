"""The hosts' shared base image: built once with mmdebstrap, cached under /var/cache/mailstack.

The tarball and its unpacked tree are keyed by everything that decides their content (release,
variant, packages, customisation), so changing the package list builds a new one and the old
one stays valid for labs still using it. Every host's root is an overlay over the unpacked tree.
"""

import contextlib
import fcntl
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from mailstack.debian import debian_mirror
from mailstack.lab.system import LabError, run

CACHE = Path("/var/cache/mailstack/rootfs")

# Host keys are made per host, and networkd gives each host its address from its own file.
CUSTOMIZE_HOOKS = (
    'rm -f "$1"/etc/ssh/ssh_host_*',
    'systemctl --root="$1" enable systemd-networkd.service',
    # Hosts take their resolver from the lab's own file, not from a stub that is not there.
    'rm -f "$1"/etc/resolv.conf',
)
IMAGE_FORMAT = 1
"""Bump when the build changes in a way the key does not capture."""


def image_key(suite: str, packages: list[str]) -> str:
    recipe = {
        "suite": suite,
        "variant": "minbase",
        "packages": sorted(set(packages)),
        "hooks": CUSTOMIZE_HOOKS,
        "format": IMAGE_FORMAT,
    }
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    return f"{suite}-{digest[:16]}"


@contextlib.contextmanager
def _cache_lock():
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def base_image(suite: str, packages: list[str], log=print) -> Path:
    """The unpacked base tree for this package list, building and caching it if needed."""
    key = image_key(suite, packages)
    tree, tarball, ready = CACHE / key, CACHE / f"{key}.tar", CACHE / f"{key}.ready"
    if ready.exists():
        return tree
    with _cache_lock():
        if ready.exists():
            return tree
        if not tarball.exists():
            log(f"building the {suite} base image (mmdebstrap; cached as {tarball})")
            partial = tarball.with_suffix(".tar.partial")
            command = [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                "--format=tar",
                f"--include={','.join(sorted(set(packages)))}",
                *(f"--customize-hook={hook}" for hook in CUSTOMIZE_HOOKS),
                suite,
                str(partial),
                f"deb {debian_mirror()} {suite} main",
            ]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                partial.unlink(missing_ok=True)
                tail = "\n".join((result.stderr or result.stdout).splitlines()[-15:])
                raise LabError(f"building the base image failed:\n{tail}")
            partial.rename(tarball)
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir()
        run("tar", "--numeric-owner", "--xattrs", "-xpf", str(tarball), "-C", str(tree))
        ready.touch()
    return tree
