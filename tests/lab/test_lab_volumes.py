"""The lab's volumes and its Hetzner Cloud API with hosts running: fences, moves, crashes.

Failover's own client (`mailstack.failover.hetzner`) drives the lab's API, configured only by the
lab's endpoint and token, as it drives Hetzner's. The tests leave the lab as they found it: every
host running, every volume on its first host, nothing of theirs mounted. On a deployed lab the
failover clusters stand aside meanwhile (mailstack.testing.clusters.clusters_aside).
"""

import subprocess
import time
from pathlib import Path

import pytest

from mailstack.failover import hetzner
from mailstack.lab import cloudservice
from mailstack.lab.volumes import DEVICES_HIERARCHY
from mailstack.testing.cloud import attach_at_once
from mailstack.testing.clusters import clusters_aside

MOUNT = "/mnt/volume-test"
MAIL = "lab-mail"


def first_servers(lab, client) -> None:
    for volume in lab.volumes.all():
        hetzner.move_volume(client, volume.name, volume.first_server, allow_running_source=True)


@pytest.fixture(scope="module")
def cloud(lab_hosts):
    """A failover client of the test lab's API, with the lab's clusters (if deployed) standing
    aside and every volume on its first host."""
    lab = lab_hosts
    client = hetzner.connect(hetzner.CloudConfig.load(lab.cloud_env_file))
    with clusters_aside(lab):
        first_servers(lab, client)
        yield client
        for host in lab.hosts():
            if not lab.running(host):
                lab.start_host(host)
        lab.wait_ready(lab.hosts(), timeout=lab.state().lab.boot_timeout_seconds)
        for host in lab.hosts():
            lab.ssh(host, f"umount {MOUNT} 2>/dev/null; rmdir {MOUNT} 2>/dev/null; true")
        first_servers(lab, client)


def ssh(lab, host: str, command: str) -> str:
    result = lab.ssh(lab.host(host), command, timeout=60)
    assert result.returncode == 0, f"{host}: {command}: {result.stderr}"
    return result.stdout


def volume_nodes(lab, host: str) -> set[str]:
    listing = lab.ssh(lab.host(host), "ls /dev/disk/by-id/ 2>/dev/null").stdout
    return set(listing.split())


def superblock(lab, name: str) -> str:
    """dumpe2fs's view of the volume's disk, read on the machine from its file."""
    image = lab.volumes.get(name).path
    return subprocess.run(
        ["dumpe2fs", "-h", str(image)], capture_output=True, text=True, check=True
    ).stdout


def mount(lab, host: str, name: str) -> None:
    device = lab.volumes.get(name).linux_device
    ssh(lab, host, f"mkdir -p {MOUNT} && mount {device} {MOUNT}")


def test_each_host_sees_exactly_the_volumes_attached_to_it(lab_hosts, cloud):
    lab = lab_hosts
    expected = {host.name: set() for host in lab.hosts()}
    for state in hetzner.volume_status(cloud):
        expected[state.server].add(Path(state.linux_device).name)
    for host, nodes in expected.items():
        assert volume_nodes(lab, host) == nodes, host
    # The devices cgroup keeps other hosts off a volume's device, even with a node of their own.
    mail = lab.volumes.attachments()[MAIL]
    major, minor = mail.number
    refused = lab.ssh(lab.host("mailstore2"), f"mknod /tmp/stolen b {major} {minor}")
    assert refused.returncode != 0 and "not permitted" in refused.stderr


def test_a_fenced_node_leaves_a_crashed_filesystem_the_survivor_recovers(lab_hosts, cloud):
    lab = lab_hosts
    mount(lab, "mailstore1", MAIL)
    ssh(
        lab,
        "mailstore1",
        f"""python3 -c '
import os
with open("{MOUNT}/synced", "w") as f:
    f.write("accepted mail\\n" * 4096)
    f.flush()
    os.fsync(f.fileno())
directory = os.open("{MOUNT}", os.O_RDONLY)
os.fsync(directory)
with open("{MOUNT}/unsynced", "w") as f:
    f.write("not yet on disk\\n" * 4096)
'""",
    )

    fenced = hetzner.fence(cloud, "lab-mailstore1", timeout=30)
    assert hetzner.server_status(cloud, "lab-mailstore1")[0].status == "off"
    # Shut down without a log flush: the disk says the journal must be replayed.
    assert "needs_recovery" in superblock(lab, MAIL)

    moved = hetzner.move_volume(cloud, MAIL, "lab-mailstore2", timeout=30)
    assert volume_nodes(lab, "mailstore2") >= {Path(lab.volumes.get(MAIL).linux_device).name}
    mount(lab, "mailstore2", MAIL)
    synced = ssh(lab, "mailstore2", f"cat {MOUNT}/synced")
    unsynced = lab.ssh(lab.host("mailstore2"), f"wc -c < {MOUNT}/unsynced").stdout.strip()
    ssh(lab, "mailstore2", f"rm -f {MOUNT}/synced {MOUNT}/unsynced; umount {MOUNT}")
    print(
        f"\nfence {fenced:.2f} s, volume move {moved:.2f} s; unsynced file after recovery: "
        f"{unsynced + ' bytes' if unsynced else 'gone'}"
    )
    assert synced == "accepted mail\n" * 4096
    assert "needs_recovery" not in superblock(lab, MAIL)
    check = subprocess.run(
        ["e2fsck", "-fn", str(lab.volumes.get(MAIL).path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr

    hetzner.power_on(cloud, "lab-mailstore1", timeout=30)
    lab.wait_ready([lab.host("mailstore1")], timeout=lab.state().lab.boot_timeout_seconds)
    # Powered on again, it has no volume: the mail volume stays with the survivor.
    assert volume_nodes(lab, "mailstore1") == set()


def test_the_survivor_does_not_take_a_volume_from_a_running_node(lab_hosts, cloud):
    holder = hetzner.volume_status(cloud, MAIL)[0].server
    other = "lab-mailstore1" if holder == "lab-mailstore2" else "lab-mailstore2"
    with pytest.raises(hetzner.UnsafeMove, match="fence it first"):
        hetzner.move_volume(cloud, MAIL, other, timeout=30)
    assert hetzner.volume_status(cloud, MAIL)[0].server == holder


def test_moves_between_running_hosts_hand_the_device_over(lab_hosts, cloud):
    """The lab's own attach and detach, and the same through the API with the failover client
    (HTTP, action polling); the times are printed (benchmarks/test_lab_volumes.py measures)."""
    lab = lab_hosts
    hosts = [lab.host("mailstore1"), lab.host("mailstore2")]
    name = Path(lab.volumes.get(MAIL).linux_device).name
    attach_times, detach_times, api_times = [], [], []
    for round_ in range(6):
        source = hosts[0] if lab.volumes.attachments()[MAIL].server == hosts[0].name else hosts[1]
        target = hosts[1] if source is hosts[0] else hosts[0]
        if round_ % 2:
            api_times.append(
                hetzner.move_volume(cloud, MAIL, target.name, timeout=30, allow_running_source=True)
            )
        else:
            started = time.monotonic()
            lab.volumes.detach(MAIL, source)
            detached = time.monotonic()
            lab.volumes.attach(MAIL, target)
            detach_times.append(detached - started)
            attach_times.append(time.monotonic() - detached)
        assert name in volume_nodes(lab, target.name)
        assert name not in volume_nodes(lab, source.name)
    print(
        f"\nlab attach max {max(attach_times) * 1000:.0f} ms, detach max "
        f"{max(detach_times) * 1000:.0f} ms; move through the API (detach + attach, polled) "
        f"max {max(api_times):.2f} s"
    )


def test_a_volume_is_never_attached_to_two_hosts(lab_hosts, cloud):
    lab = lab_hosts
    hetzner.detach_volume(cloud, MAIL, timeout=30, allow_running_source=True)
    config = hetzner.CloudConfig.load(lab.cloud_env_file)
    targets = ["lab-mailstore1", "lab-mailstore2"] * 4
    outcomes = attach_at_once(config, MAIL, targets)
    winners = [outcome for outcome in outcomes if outcome.startswith("lab-")]
    assert len(winners) == 1, outcomes
    assert set(outcomes) - set(winners) <= {"locked", "volume_already_attached"}, outcomes
    pair = [lab.host("mailstore1"), lab.host("mailstore2")]
    assert [host.name for host in pair if volume_nodes(lab, host.name)] == winners
    major, minor = lab.volumes.attachments()[MAIL].number
    allowed = [
        host.name
        for host in pair
        if f"b {major}:{minor} rwm"
        in (DEVICES_HIERARCHY / lab.cgroup(host).relative / "devices.list").read_text()
    ]
    assert allowed == winners


def test_detaching_from_a_running_host_cuts_off_its_mounted_filesystem(lab_hosts, cloud):
    lab = lab_hosts
    hetzner.move_volume(cloud, MAIL, "lab-mailstore1", timeout=30, allow_running_source=True)
    mount(lab, "mailstore1", MAIL)
    hetzner.move_volume(cloud, MAIL, "lab-mailstore2", timeout=30, allow_running_source=True)
    # Like a disk pulled out: the old mount fails every write ...
    write = lab.ssh(lab.host("mailstore1"), f"touch {MOUNT}/after-detach")
    assert write.returncode != 0, "a host wrote to a volume detached from it"
    # ... and the new host mounts the disk, not the old host's dying filesystem.
    mount(lab, "mailstore2", MAIL)
    ssh(lab, "mailstore2", f"touch {MOUNT}/on-the-new-host && rm {MOUNT}/on-the-new-host")
    ssh(lab, "mailstore2", f"umount {MOUNT}")
    ssh(lab, "mailstore1", f"umount {MOUNT}")
    # The cut-off mount wrote nothing to the disk on its way out.
    check = subprocess.run(
        ["e2fsck", "-fn", str(lab.volumes.get(MAIL).path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_restarted_host_keeps_its_volume_and_a_crash_leaves_it_to_recover(lab_hosts, cloud):
    lab = lab_hosts
    queue = "lab-mx1-data"
    mount(lab, "mx1", queue)
    ssh(lab, "mx1", f"echo queued > {MOUNT}/message && sync {MOUNT}/message")
    lab.faults.restart("mx1")
    assert "needs_recovery" in superblock(lab, queue)
    assert volume_nodes(lab, "mx1") == {Path(lab.volumes.get(queue).linux_device).name}
    mount(lab, "mx1", queue)
    assert ssh(lab, "mx1", f"cat {MOUNT}/message; rm {MOUNT}/message") == "queued\n"
    ssh(lab, "mx1", f"umount {MOUNT}")
    # `lab up` on the running lab keeps what is attached where.
    before = lab.volumes.attachments()
    lab.up()
    assert lab.volumes.attachments() == before


def test_power_actions_shutdown_and_reset(lab_hosts, cloud):
    lab = lab_hosts
    server = cloud.servers.get_by_name("lab-web1")
    server.shutdown().wait_until_finished()
    deadline = time.monotonic() + 60
    while cloud.servers.get_by_name("lab-web1").status != "off":
        assert time.monotonic() < deadline, "web1 did not power off after an ACPI shutdown"
        time.sleep(0.2)
    hetzner.power_on(cloud, "lab-web1", timeout=30)
    lab.wait_ready([lab.host("web1")], timeout=lab.state().lab.boot_timeout_seconds)
    boot = ssh(lab, "web1", "cat /proc/sys/kernel/random/boot_id")
    cloud.servers.get_by_name("lab-web1").reset().wait_until_finished()
    lab.wait_ready([lab.host("web1")], timeout=lab.state().lab.boot_timeout_seconds)
    assert ssh(lab, "web1", "cat /proc/sys/kernel/random/boot_id") != boot


def test_hosts_reach_the_api_only_with_the_token(lab_hosts):
    lab = lab_hosts
    state = lab.state()
    url = cloudservice.endpoint(state.gateway, state.lab.cloud_api_port) + "/servers"
    token = cloudservice.token(lab.state_dir)

    def status(header: str) -> str:
        return ssh(lab, "mailstore2", f"curl -s -o /dev/null -w '%{{http_code}}' {header} {url}")

    assert status("") == "401"
    assert status("-H 'Authorization: Bearer wrong'") == "401"
    assert status(f"-H 'Authorization: Bearer {token}'") == "200"
