"""The volumes and the failover clusters as deployed: each service's data on its volume, the
services held back without it, the clusters whole and quorate with the quorum device's vote."""

import re
import xml.etree.ElementTree as ET

import pytest

from mailstack.services import corosync, dovecot, pacemaker, patroni, qnetd, volumes
from mailstack.settings.plan import cluster_roles

pytestmark = pytest.mark.lab


def mounts(host) -> dict[str, str]:
    """Mount point -> source of every mount."""
    return {
        line.split()[1]: line.split()[0]
        for line in host.file("/proc/self/mounts").content_string.splitlines()
    }


def device(inventory, name: str) -> str:
    return inventory.volume(name).linux_device


def test_every_service_keeps_its_data_on_its_volume(hosts, inventory):
    env = inventory.environment
    if inventory.settings().topology.profile == "single":
        pytest.skip("the single profile bind-mounts every data path from one volume")
    holders = [
        member.name
        for member, host in hosts["mailstore"]
        if mounts(host).get(dovecot.MAIL_ROOT) == device(inventory, f"{env}-mail")
    ]
    assert len(holders) == 1, f"the mail volume is mounted on {holders}"
    for member, host in hosts["mx"]:
        own = device(inventory, f"{member.name}-data")
        assert mounts(host).get(volumes.QUEUE_DIRECTORY) == own, member.name
    for member, host in hosts["db"]:
        own = device(inventory, f"{member.name}-data")
        assert mounts(host).get(volumes.DATABASE_DIRECTORY) == own, member.name
        assert host.service(volumes.unit_name(volumes.DATABASE_DIRECTORY)).is_enabled


def test_services_will_not_start_without_their_volume(hosts, inventory):
    # On the db clusters Patroni runs PostgreSQL; the single profile's host runs Debian's unit.
    clustered = inventory.settings().topology.profile != "single"
    database = [patroni.UNIT] if clustered else ["postgresql@17-main"]
    expected = {"mailstore": ["dovecot"], "mx": ["postfix"], "db": database}
    for role, units in expected.items():
        for member, host in hosts[role]:
            for unit in units:
                pre = host.check_output(f"systemctl show -p ExecStartPre --value {unit}")
                assert "mountpoint" in pre, (member.name, unit)
    # The passive mailstore node: the guard Dovecot's start runs first fails there.
    for member, host in hosts["mailstore"]:
        if not host.service("dovecot").is_running:
            assert host.run(f"mountpoint -q {dovecot.MAIL_ROOT}").rc != 0, member.name


def cluster_status(host) -> ET.Element:
    return ET.fromstring(host.check_output("crm_mon -1 --output-as=xml"))


def test_clusters_are_whole_quorate_and_fence_through_the_api(hosts, inventory):
    roles = cluster_roles(inventory.settings())
    if not roles:
        pytest.skip("no cluster in this environment")
    for role in roles:
        members = hosts[role]
        for member, host in members:
            status = cluster_status(host)
            dc = status.find("summary/current_dc")
            assert dc.get("with_quorum") == "true", member.name
            online = {n.get("name") for n in status.iter("node") if n.get("online") == "true"}
            assert online == {m.name for m, _ in members}, member.name
            quorum = host.check_output("corosync-quorumtool -s")
            assert "Qdevice" in quorum and "Quorate:          Yes" in quorum, quorum
            assert host.service(corosync.QDEVICE_UNIT).is_running, member.name
            env_file = host.file(pacemaker.ENV_FILE)
            assert env_file.mode == 0o600 and env_file.user == "root", member.name
        status = cluster_status(members[0][1])
        fence = next(r for r in status.iter("resource") if r.get("id") == "fence-hcloud")
        assert fence.get("active") == "true", role
        # The fence agent reaches the API with the node's token: it lists the servers.
        listed = members[0][1].run(f"{pacemaker.FENCE_AGENT_PATH} --action list")
        assert listed.rc == 0 and members[0][0].name in listed.stdout, listed.stderr


def test_the_quorum_device_listens_on_the_private_address_with_tls(hosts, inventory):
    if not cluster_roles(inventory.settings()):
        pytest.skip("no cluster in this environment")
    member, host = hosts["db"][0]
    assert host.service(qnetd.UNIT).is_running
    sockets = host.check_output("ss -Hltn").split("\n")
    assert any(f"{member.private_ip}:{qnetd.PORT}" in line for line in sockets)
    clusters = host.check_output("corosync-qnetd-tool -l -v")
    for role in cluster_roles(inventory.settings()):
        assert f"{inventory.environment}-{role}" in clusters, clusters
    # Every node of every cluster: TLS, with a client certificate naming its cluster.
    tls = re.findall(r"TLS active:\s+(.*)", clusters)
    nodes = sum(len(hosts[role]) for role in cluster_roles(inventory.settings()))
    assert tls == ["Yes (client certificate verified)"] * nodes, clusters
