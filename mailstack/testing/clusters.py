"""The failover clusters as the drills and benchmarks see them: where resources run, which nodes
are online, and a watch that no volume is ever mounted on two hosts at once."""

import contextlib
import imaplib
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mailstack.failover import hetzner
from mailstack.lab.system import LabError


class Cluster:
    """One role's cluster (mailstore or mx), asked through any of its nodes that answers."""

    def __init__(self, platform, role: str):
        self.platform = platform
        self.role = role

    @property
    def nodes(self) -> list[str]:
        return self.platform.hosts(self.role)

    def status(self) -> ET.Element:
        """crm_mon's XML from the first node that answers (and is part of the quorate side)."""
        problems = []
        for node in self.nodes:
            if not self.platform.lab.running(self.platform.lab.host(node)):
                continue
            try:
                output = self.platform.sh(node, "crm_mon -1 --output-as=xml", timeout=20)
            except (AssertionError, OSError) as error:
                problems.append(f"{node}: {error}")
                continue
            status = ET.fromstring(output)
            quorum = status.find("summary/current_dc")
            if quorum is not None and quorum.get("with_quorum") == "true":
                return status
            problems.append(f"{node}: no quorum")
        raise AssertionError(f"no quorate node of the {self.role} cluster: {problems}")

    def running_on(self, resource: str, status: ET.Element | None = None) -> list[str]:
        """The nodes a resource (or group) is started on."""
        status = status if status is not None else self.status()
        found = []
        for element in status.iter("resource"):
            if element.get("id") == resource and element.get("active") == "true":
                found += [node.get("name") for node in element.findall("node")]
        for group in status.iter("group"):
            if group.get("id") == resource:
                members = group.findall("resource")
                if members and all(m.get("active") == "true" for m in members):
                    found += [n.get("name") for n in members[-1].findall("node")]
        return found

    def online(self, status: ET.Element | None = None) -> list[str]:
        status = status if status is not None else self.status()
        return [n.get("name") for n in status.iter("node") if n.get("online") == "true"]

    def failed_actions(self, status: ET.Element | None = None) -> list[str]:
        status = status if status is not None else self.status()
        failures = status.find("failures")
        return [] if failures is None else [ET.tostring(f).decode() for f in failures]

    def wait(self, what: str, condition: Callable[[ET.Element], bool], timeout: float) -> float:
        """Seconds until `condition(status)` holds; AssertionError naming `what` at the timeout."""
        started = time.monotonic()
        last = None
        while True:
            try:
                last = self.status()
                if condition(last):
                    return time.monotonic() - started
            except AssertionError as error:
                last = error
            if time.monotonic() - started > timeout:
                detail = ET.tostring(last).decode()[:3000] if isinstance(last, ET.Element) else last
                raise AssertionError(
                    f"{self.role} cluster: {what} not within {timeout} s: {detail}"
                )
            time.sleep(0.5)


def imap_answers(platform, mailbox, timeout: float = 10.0) -> bool:
    """Whether a client logs in through the balancer and opens its inbox. The connection is
    closed whatever happens (Dovecot allows a user ten at once from one address)."""
    try:
        imap = imaplib.IMAP4_SSL(
            platform.access_address, 993, ssl_context=platform.client_tls(), timeout=timeout
        )
    except OSError:
        return False
    try:
        imap.login(mailbox.address, mailbox.password)
        return imap.select("INBOX", readonly=True)[0] == "OK"
    except (imaplib.IMAP4.error, OSError):
        return False
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            imap.logout()
        with contextlib.suppress(OSError):
            imap.shutdown()


def cloud_client(platform):
    """The failover client of the lab's Hetzner-compatible API, as operators use it."""
    return hetzner.connect(hetzner.CloudConfig.load(platform.lab.cloud_env_file))


@dataclass(frozen=True)
class Overlap:
    at: float
    volume: str
    hosts: tuple[str, ...]


class VolumeWatch:
    """Samples, every `interval` seconds, which hosts have each volume mounted (from the hosts'
    mount tables, read on the machine), and records every sample where one volume was mounted on
    more than one host: what split brain would look like."""

    def __init__(self, lab, hosts: list[str], interval: float = 0.05):
        self.lab = lab
        self.hosts = [lab.host(name) for name in hosts]
        self.interval = interval
        self.overlaps: list[Overlap] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._inits: dict[str, int] = {}

    def _mounted(self, host) -> dict[str, list[str]]:
        pid = self._inits.get(host.name)
        if pid is None or not Path(f"/proc/{pid}").exists():
            try:
                pid = self._inits[host.name] = self.lab.volumes.init_pid(host, timeout=0)
            except LabError:
                self._inits.pop(host.name, None)
                return {}
        return self.lab.volumes.mounted_by(pid)

    def _run(self) -> None:
        while not self._stop.is_set():
            holders: dict[str, list[str]] = {}
            for host in self.hosts:
                for volume in self._mounted(host):
                    holders.setdefault(volume, []).append(host.name)
            self.samples += 1
            for volume, hosts in holders.items():
                if len(hosts) > 1:
                    self.overlaps.append(Overlap(time.time(), volume, tuple(hosts)))
            self._stop.wait(self.interval)

    def __enter__(self) -> "VolumeWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def clusters_aside(lab):
    """The lab's clusters stand aside while a test moves volumes and powers hosts off by hand:
    every resource stopped cleanly (filesystems unmounted, Dovecot and Postfix stopped), then
    maintenance mode (nothing started, stopped or checked) and no fencing. Afterwards they read
    every node's state again and start everything where it belongs. Does nothing on a lab whose
    nodes run no cluster (not deployed)."""
    inventory = lab.inventory()
    first = [
        lab.host(hosts[0].name)
        for role in ("mailstore", "mx")
        if (hosts := inventory.with_role(role))
    ]
    clustered = [h for h in first if lab.ssh(h, "command -v crm_attribute").returncode == 0]

    def on_each(*commands: str) -> None:
        for host in clustered:
            for command in commands:
                result = lab.ssh(host, command, timeout=300)
                assert result.returncode == 0, f"{host.name}: {command}: {result.stderr}"

    def set_property(name: str, value: str) -> str:
        return f"crm_attribute --type crm_config --name {name} --update {value}"

    on_each(
        set_property("stonith-enabled", "false"),
        set_property("stop-all-resources", "true"),
        "crm_resource --wait --timeout 240s",
        set_property("maintenance-mode", "true"),
    )
    try:
        yield
    finally:
        on_each(
            "crm_resource --refresh",
            "crm_resource --wait --timeout 240s",
            set_property("stop-all-resources", "false"),
            set_property("maintenance-mode", "false"),
            set_property("stonith-enabled", "true"),
            "crm_resource --wait --timeout 240s",
        )


def wait_until_fenced(lab, name: str, timeout: float = 90) -> None:
    """After a host of a cluster died: wait until its cluster has fenced it (a peer shows it
    offline and clean), so starting it again cannot be undone by a late fence. Returns at once
    for a host outside every cluster or on a lab whose nodes run none."""
    dead = lab.host(name)
    role = next((r for r in ("mailstore", "mx") if r in dead.roles), None)
    if role is None:
        return
    peers = [lab.host(h.name) for h in lab.inventory().with_role(role) if h.name != dead.name]
    peer = next((p for p in peers if lab.running(p)), None)
    if peer is None or lab.ssh(peer, "command -v crm_mon").returncode != 0:
        return
    deadline = time.monotonic() + timeout
    while True:
        status = lab.ssh(peer, "crm_mon -1 --output-as=xml", timeout=30)
        if status.returncode == 0:
            nodes = {n.get("name"): n for n in ET.fromstring(status.stdout).iter("node")}
            node = nodes.get(dead.name)
            if (
                node is not None
                and node.get("online") == "false"
                and node.get("unclean") == "false"
            ):
                return
        assert time.monotonic() < deadline, f"{dead.name} was not fenced within {timeout} s"
        time.sleep(1)
