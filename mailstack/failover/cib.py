"""The deploy's view of a cluster's configuration (the CIB): what differs from the wanted one,
and a change that makes it so without touching what belongs to the nodes or the operators.

The wanted configuration is a file of Pacemaker's schema (mailstack.services.pacemaker.CIB).
Compared by id, element by element:
- cluster properties: only the properties the file names (a property an operator sets, such as
  maintenance-mode, stays);
- resources: every resource is the deploy's; one the file no longer has is removed. An
  operator's target-role, is-managed or maintenance on a resource stays;
- constraints: every constraint is the deploy's except `cli-*` ones (crm_resource --move,
  --ban), which stay;
- resource and operation defaults: the sets the file names.
Nodes (standby and other node attributes) and the status section are never touched.

Run on a node (`python3 -m mailstack.failover.cib apply FILE`), it reads the live CIB, builds
the new one, checks it with crm_verify and applies the difference as one patch (crm_diff,
cibadmin --patch). A patch made against a CIB that changed since is refused: the controller
writes its own properties (dc-version, cluster-name) just after it is elected, so a refused patch
is made again from the CIB as it then is, until the timeout. Only the standard library is used,
so the hosts' Python runs it without the platform's venv.
"""

import argparse
import copy
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

SECTIONS = ("crm_config", "resources", "constraints", "rsc_defaults", "op_defaults")
OPERATOR_META = frozenset({"target-role", "is-managed", "maintenance"})
"""Resource meta attributes operators set by hand (disable, unmanage), kept across deploys."""
OPERATOR_CONSTRAINT_PREFIX = "cli-"
"""crm_resource --move and --ban name their constraints so."""


class CibError(Exception):
    """The live CIB cannot be read, or the change fails its check or its patch."""


def parse(text: str) -> ET.Element:
    """A CIB document (or its configuration section) without comments or blank text."""
    return ET.fromstring(text.encode() if isinstance(text, str) else text)


def _canonical(element: ET.Element) -> tuple:
    return (
        element.tag,
        tuple(sorted(element.attrib.items())),
        tuple(_canonical(child) for child in element),
    )


def same(a: ET.Element, b: ET.Element) -> bool:
    """Equal as configuration: tags, attributes and children, whatever the text between."""
    return _canonical(a) == _canonical(b)


def _configuration(cib: ET.Element) -> ET.Element:
    found = cib if cib.tag == "configuration" else cib.find("configuration")
    if found is None:
        raise CibError("no <configuration> in the CIB")
    return found


def _section(configuration: ET.Element, name: str) -> ET.Element:
    section = configuration.find(name)
    if section is None:
        section = ET.SubElement(configuration, name)
    return section


def _by_id(parent: ET.Element) -> dict[str, ET.Element]:
    return {child.get("id"): child for child in parent if child.get("id")}


def _with_operator_meta(wanted: ET.Element, live: ET.Element | None) -> ET.Element:
    """`wanted` with the operator's meta attributes of `live` (on the element and on each of
    its members by id) carried over."""
    wanted = copy.deepcopy(wanted)
    if live is None:
        return wanted
    live_by_id = {e.get("id"): e for e in live.iter() if e.get("id")}
    for element in [wanted, *wanted.iter()]:
        counterpart = live_by_id.get(element.get("id"))
        if counterpart is None or element.tag not in ("primitive", "group", "clone"):
            continue
        kept = [
            meta
            for meta in counterpart.findall("meta_attributes")
            if meta.findall("nvpair")
            and all(nv.get("name") in OPERATOR_META for nv in meta.findall("nvpair"))
        ]
        if kept and element.find("meta_attributes") is None:
            # Meta attributes come before operations in Pacemaker's schema order.
            for meta in kept:
                element.insert(0, copy.deepcopy(meta))
    return wanted


def merged(live_cib: ET.Element, wanted_cib: ET.Element) -> ET.Element | None:
    """The live CIB changed to hold the wanted configuration, or None when it holds it."""
    new = copy.deepcopy(live_cib)
    configuration = _configuration(new)
    wanted_configuration = _configuration(wanted_cib)
    changed = False
    for name in SECTIONS:
        section = _section(configuration, name)
        wanted = wanted_configuration.find(name)
        wanted_children = list(wanted) if wanted is not None else []
        live = _by_id(section)
        if name == "crm_config":
            for wanted_set in wanted_children:
                live_set = live.get(wanted_set.get("id"))
                if live_set is None:
                    section.append(copy.deepcopy(wanted_set))
                    changed = True
                    continue
                pairs = _by_id(live_set)
                for pair in wanted_set:
                    current = pairs.get(pair.get("id"))
                    if current is not None and same(current, pair):
                        continue
                    if current is not None:
                        live_set.remove(current)
                    live_set.append(copy.deepcopy(pair))
                    changed = True
            continue
        wanted_ids = {child.get("id") for child in wanted_children}
        for child in list(section):
            ours = name != "constraints" or not child.get("id", "").startswith(
                OPERATOR_CONSTRAINT_PREFIX
            )
            if ours and child.get("id") not in wanted_ids and name in ("resources", "constraints"):
                section.remove(child)
                changed = True
        for position, wanted_child in enumerate(wanted_children):
            current = live.get(wanted_child.get("id"))
            target = (
                _with_operator_meta(wanted_child, current)
                if name == "resources"
                else copy.deepcopy(wanted_child)
            )
            if current is not None and same(current, target):
                continue
            if current is not None:
                index = list(section).index(current)
                section.remove(current)
                section.insert(index, target)
            else:
                section.insert(min(position, len(section)), target)
            changed = True
    if not changed:
        return None
    new.set("epoch", str(int(new.get("epoch", "0")) + 1))
    return new


def differs(live_text: str | None, wanted_text: str) -> bool:
    """Whether the live CIB (None: none readable yet) lacks the wanted configuration."""
    if not live_text:
        return True
    return merged(parse(live_text), parse(wanted_text)) is not None


# --- on a node --------------------------------------------------------------------------------


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True)


def _elected() -> bool:
    """Whether the cluster has a designated controller (it has formed and synced its CIB)."""
    status = _run("crm_mon", "-1", "--output-as=xml")
    if status.returncode != 0:
        return False
    dc = ET.fromstring(status.stdout).find("summary/current_dc")
    return dc is not None and dc.get("present") == "true"


def live(timeout: float) -> str:
    """The live CIB, once the cluster has formed (a controller elected, the CIB synced)."""
    deadline = time.monotonic() + timeout
    while True:
        result = _run("cibadmin", "--query")
        if result.returncode == 0 and _elected():
            return result.stdout
        if time.monotonic() > deadline:
            raise CibError(f"the cluster did not form: {result.stderr.strip() or 'no controller'}")
        time.sleep(1)


def apply(wanted_file: Path, timeout: float) -> bool:
    """Make the live CIB hold the wanted configuration; True when it changed it. A patch the
    cluster refuses (the CIB changed since it was read) is made again until `timeout`."""
    deadline = time.monotonic() + timeout
    wanted = parse(wanted_file.read_text())
    while True:
        current = live(max(1.0, deadline - time.monotonic()))
        new = merged(parse(current), wanted)
        if new is None:
            return False
        refused = _patch(current, new)
        if refused is None:
            return True
        if time.monotonic() > deadline:
            raise CibError(f"cibadmin --patch failed: {refused}")
        time.sleep(1)


def _patch(current: str, new: ET.Element) -> str | None:
    """Apply the difference between the CIB as read and the new one: None when applied,
    cibadmin's error when the cluster refused it. Raises CibError when the new configuration
    fails crm_verify or crm_diff fails."""
    with tempfile.TemporaryDirectory(prefix="mailstack-cib-") as directory:
        old_file, new_file = Path(directory) / "live.xml", Path(directory) / "new.xml"
        old_file.write_text(current)
        new_file.write_bytes(ET.tostring(new))
        check = _run("crm_verify", "--xml-file", str(new_file))
        if check.returncode != 0:
            # Without -V, crm_verify only says that something is wrong, not what.
            check = _run("crm_verify", "-V", "--xml-file", str(new_file))
            raise CibError(f"the new configuration fails crm_verify:\n{check.stdout}{check.stderr}")
        diff = _run("crm_diff", "--original", str(old_file), "--new", str(new_file))
        # crm_diff exits 1 when it found differences.
        if diff.returncode not in (0, 1) or not diff.stdout.strip():
            raise CibError(f"crm_diff failed: {diff.stderr.strip()}")
        patch_file = Path(directory) / "patch.xml"
        patch_file.write_text(diff.stdout)
        patched = _run("cibadmin", "--patch", "--xml-file", str(patch_file))
        if patched.returncode != 0:
            return patched.stderr.strip() or f"exit {patched.returncode}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m mailstack.failover.cib")
    parser.add_argument("command", choices=["apply", "check"])
    parser.add_argument("file", type=Path, help="the wanted configuration (a CIB document)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for the CIB")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            changed = differs(live(args.timeout), args.file.read_text())
            print("differs" if changed else "matches")
            return 0
        print("applied" if apply(args.file, args.timeout) else "unchanged")
    except CibError as error:
        print(f"mailstack cib: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
