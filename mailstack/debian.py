"""Facts about the Debian machine the tooling runs on."""

import re
from pathlib import Path

APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


def debian_mirror() -> str:
    """The Debian archive this machine already uses, so no mirror host is written anywhere.

    Reads one-line (`deb URL suite ...`) and deb822 (`URIs: URL`) sources and returns the first
    URL that serves the main archive (not security, not third-party repositories).
    """
    files: list[Path] = []
    for source in APT_SOURCES:
        if source.is_dir():
            files += sorted(p for p in source.iterdir() if p.suffix in (".list", ".sources"))
        elif source.exists():
            files.append(source)
    for file in files:
        text = file.read_text()
        urls = re.findall(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M)
        urls += re.findall(r"^\s*URIs:\s*(\S+)", text, re.M)
        for url in urls:
            if url.rstrip("/").endswith("/debian"):
                return url.rstrip("/")
    raise RuntimeError(
        "no Debian archive found in the machine's apt sources "
        f"({', '.join(str(s) for s in APT_SOURCES)})"
    )
