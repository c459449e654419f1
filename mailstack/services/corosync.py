"""Corosync 3 and its quorum device client on the nodes of each failover cluster (the mailstore
pair, the mx nodes): membership over knet on the private network, encrypted and authenticated
with the cluster's key, and a third vote from corosync-qnetd (`mailstack.services.qnetd`).

One cluster per role, named `<environment>-<role>`; the node names are the host names, which
are the servers' names at Hetzner (what the fence agent powers off).
"""

import secrets as random
from dataclasses import dataclass

from mailstack.deploy.configfile import ConfigFile
from mailstack.services import qnetd

UNIT = "corosync"
QDEVICE_UNIT = "corosync-qdevice"
CHECK = "corosync -t"
"""Corosync's own configuration test (parses corosync.conf as the daemon does)."""
KNET_PORT = 5405
"""knet's UDP port (link 0), between the nodes of a cluster."""
QDEVICE_DIR = "/etc/corosync/qdevice/net"
QDEVICE_PEM_DIR = f"{QDEVICE_DIR}/mailstack"
QDEVICE_CHECK = (
    f"openssl verify -CAfile {QDEVICE_PEM_DIR}/ca.pem {QDEVICE_PEM_DIR}/cluster.pem >/dev/null"
)
ROLES = ("mailstore", "mx")
"""Roles whose hosts form a cluster (where `cluster_roles` says the environment has them)."""


@dataclass(frozen=True)
class Node:
    name: str
    id: int
    address: str


def cluster_role(deployment, host) -> str | None:
    """The role whose cluster the host is a node of, None outside every cluster (the single
    profile's host)."""
    return next((role for role in ROLES if role in host.roles and deployment.clustered(role)), None)


def nodes(deployment, role: str) -> list[Node]:
    """The cluster's nodes, with ids in inventory order (stable as long as the order is)."""
    return [
        Node(host.name, number, str(host.private_ip))
        for number, host in enumerate(deployment.hosts(role), start=1)
    ]


def algorithm(node_count: int) -> str:
    """qnetd's decision rule: ffsplit gives exactly one half of an even cluster the vote; lms
    (last man standing) keeps the largest live part of an odd one quorate."""
    return "ffsplit" if node_count % 2 == 0 else "lms"


def qdevice_votes(node_count: int) -> int:
    """The quorum device's votes, as its algorithm needs them: 1 for ffsplit, one less than the
    nodes for lms (so the last node standing with the device's votes is quorate)."""
    return 1 if algorithm(node_count) == "ffsplit" else node_count - 1


def authkey(deployment, role: str) -> str:
    """The cluster's shared key (knet encryption and authentication), generated once: 256
    characters, corosync reads the file's bytes (at least 1024 bits)."""
    return deployment.secrets.get(
        f"corosync/{deployment.cluster_name(role)}_authkey", lambda: random.token_urlsafe(192)
    )


def config_files(deployment, host) -> list[ConfigFile]:
    role = cluster_role(deployment, host)
    members = nodes(deployment, role)
    quorum_host = deployment.quorum_device_host
    return [
        ConfigFile.template(
            "corosync",
            "/etc/corosync/corosync.conf",
            # corosync-cfgtool -R (the unit's reload, below) applies it on every node.
            effect="reload",
            cluster_name=deployment.cluster_name(role),
            token_ms=deployment.settings.failover.token_timeout_ms,
            knet_port=KNET_PORT,
            nodes=members,
            qnetd_address=str(quorum_host.private_ip),
            qnetd_port=qnetd.PORT,
            algorithm=algorithm(len(members)),
            qdevice_votes=qdevice_votes(len(members)),
        ),
        ConfigFile.literal(
            "/etc/corosync/authkey", authkey(deployment, role), effect="reload", mode="400"
        ),
        ConfigFile.template(
            "corosync", "/etc/systemd/system/corosync.service.d/mailstack.conf", effect="reload"
        ),
    ]


def qdevice_files(deployment, host) -> list[ConfigFile]:
    role = cluster_role(deployment, host)
    own = qnetd.client(deployment.secrets, deployment.cluster_name(role))
    return [
        qnetd.nssdb_script(),
        ConfigFile.literal(f"{QDEVICE_PEM_DIR}/ca.pem", qnetd.ca(deployment.secrets).certificate),
        ConfigFile.literal(f"{QDEVICE_PEM_DIR}/cluster.pem", own.certificate),
        ConfigFile.literal(f"{QDEVICE_PEM_DIR}/cluster.key", own.key, mode="600"),
        ConfigFile.template(
            "corosync",
            f"/etc/systemd/system/{QDEVICE_UNIT}.service.d/mailstack.conf",
            nssdb_script=qnetd.NSSDB_SCRIPT,
            nssdb_dir=f"{QDEVICE_DIR}/nssdb",
            pem_dir=QDEVICE_PEM_DIR,
            certificate="cluster",
            nickname=qnetd.CLIENT_NICKNAME,
            owner="root:root",
        ),
    ]
