"""What the policy service needs on a host, prepared on the deploying machine.

Hosts run the service from a venv of their own. Their Python comes from Debian 13 (3.13); the
deploying machine downloads the service's runtime dependencies for that Python, pinned and
hash-checked from requirements.lock, and builds the mailstack wheel, so hosts install without
reaching a package index. Both are cached under /var/cache/mailstack and reused while the lock
and the sources are unchanged, so a second deploy uploads nothing new.
"""

import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HOST_PYTHON = "3.13"
"""Debian 13's python3, on every host."""
HOST_PLATFORM = "manylinux2014_x86_64"
CACHE_DIR = Path("/var/cache/mailstack/wheels")
# What `mailstack policyd` imports on a host; their own dependencies follow from the lock.
RUNTIME_ROOTS = ("pydantic", "pyyaml", "uvloop")


def parse_lock(lock_text: str) -> dict[str, tuple[str, set[str]]]:
    """Each locked package: name -> (its block of the lock, the packages that require it)."""
    packages: dict[str, tuple[str, set[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock_text.strip()):
        name = re.match(r"([A-Za-z0-9._-]+)==", block)
        if not name:
            continue
        parents = set()
        for line in block.splitlines():
            via = re.match(r"\s*#\s+(?:via\s+)?([A-Za-z0-9._-]+)", line)
            if via and via.group(1) != "via":
                parents.add(via.group(1).lower())
        packages[name.group(1).lower()] = (block, parents)
    return packages


def runtime_requirements(lock_text: str, roots=RUNTIME_ROOTS) -> str:
    """The lock's blocks for `roots` and everything they require, as a requirements file."""
    packages = parse_lock(lock_text)
    missing = [r for r in roots if r not in packages]
    if missing:
        raise ValueError(f"requirements.lock does not pin {', '.join(missing)}")
    wanted = set(roots)
    while True:
        more = {name for name, (_, parents) in packages.items() if parents & wanted} - wanted
        if not more:
            break
        wanted |= more
    return "\n".join(packages[name][0] for name in sorted(wanted)) + "\n"


def _sources_digest(root: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(
        p for p in (root / "mailstack").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    for path in [root / "pyproject.toml", *files]:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Wheelhouse:
    directory: Path
    """Dependency wheels for the host's Python, and requirements.txt pinning them by hash."""
    mailstack_wheel: Path

    @property
    def requirements(self) -> Path:
        return self.directory / "requirements.txt"

    def dependency_wheels(self) -> list[Path]:
        return sorted(self.directory.glob("*.whl"))


def build_wheelhouse(root: Path, cache_dir: Path = CACHE_DIR) -> Wheelhouse:
    """Download (once) the runtime dependencies and build (once per source state) the wheel."""
    lock = (root / "requirements.lock").read_text()
    requirements = runtime_requirements(lock)
    key = hashlib.sha256(f"{HOST_PYTHON} {HOST_PLATFORM}\n{requirements}".encode()).hexdigest()
    deps = cache_dir / f"deps-{key[:16]}"
    if not (deps / "requirements.txt").exists():
        partial = deps.with_name(deps.name + ".partial")
        partial.mkdir(parents=True, exist_ok=True)
        (partial / "requirements.in").write_text(requirements)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--require-hashes",
                "--no-deps",
                "--only-binary=:all:",
                f"--python-version={HOST_PYTHON}",
                f"--platform={HOST_PLATFORM}",
                "--implementation=cp",
                "--dest",
                str(partial),
                "--requirement",
                str(partial / "requirements.in"),
            ],
            check=True,
        )
        (partial / "requirements.in").rename(partial / "requirements.txt")
        partial.rename(deps)
    build = cache_dir / f"mailstack-{_sources_digest(root)}"
    if not list(build.glob("mailstack-*.whl")):
        build.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--wheel-dir",
                str(build),
                str(root),
            ],
            check=True,
            # Fixed timestamps make the same sources give the same wheel on any machine.
            env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"},
        )
    (wheel,) = build.glob("mailstack-*.whl")
    return Wheelhouse(deps, wheel)
