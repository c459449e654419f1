"""Pacemaker on the failover clusters: what each cluster runs where, and the agents it runs with.

**mailstore** (the pair): one group, `mail` = the mail volume attached here (hcloud-volume) →
its filesystem at Dovecot's mail root → Dovecot. It runs on one node at a time; the other node
runs no Dovecot, so IMAP, POP3, LMTP and SASL reach the active node only (the balancer and the
mx hosts try both nodes and find the one that listens). After a failover it stays where it is.

**mx** (every mx node): per node H, its queue volume `queue-H`, preferring H; where it runs,
either H's own Postfix (group `home-H`: the volume at the queue directory, then Postfix's main
instance, allowed on H only) or, while H is dead and fenced, a takeover instance on a survivor
(group `takeover-H`: the volume at `takeover_queue(H)`, then a Postfix instance over it that
only delivers, never on H). When H returns, the queue goes back and H serves again.

Both: fencing by `FENCE_AGENT` (power off through the Hetzner API), quorum from the quorum
device, no resource without quorum. The configuration is an XML file of Pacemaker's own schema
(`CIB`), checked with crm_verify; `mailstack.failover.cib` merges it into the live CIB.
"""

from dataclasses import dataclass, field

from mailstack.deploy.configfile import ConfigFile
from mailstack.services import corosync, dovecot, volumes

UNIT = "pacemaker"
PACKAGES = [
    "pacemaker",
    "pacemaker-cli-utils",
    "corosync",
    "corosync-qdevice",
    # Fencing and resource agents' libraries, the Filesystem and postfix agents.
    "fence-agents-common",
    "resource-agents",
    # The Filesystem agent refuses to run without modprobe ("Not installed"); Debian's minimal
    # images (the lab's among them) lack it.
    "kmod",
    # What the fence and volume agents run with (Debian 13's, the version the client is for).
    "python3-hcloud",
    # NSS tools for the quorum device's certificate database.
    "libnss3-tools",
]
CIB = "/etc/mailstack/cluster/cib.xml"
CHECK = f"crm_verify --xml-file {CIB}"
"""Pacemaker's own check of a configuration: the schema, and what the scheduler makes of it."""
ENV_FILE = "/etc/mailstack/hcloud.env"
"""HCLOUD_ENDPOINT and HCLOUD_TOKEN for the fence and volume agents, readable by root only."""
FENCE_AGENT = "fence_mailstack_hcloud"
FENCE_AGENT_PATH = f"/usr/sbin/{FENCE_AGENT}"
VOLUME_AGENT_PATH = "/usr/lib/ocf/resource.d/mailstack/hcloud-volume"
CODE = "/opt/mailstack/src"
"""Where roles/venv.py puts the platform's code; the agents import mailstack.failover from it."""
STICKINESS = 100
"""A resource stays where it runs (no failback of the mail group after a failover)."""
HOME_PREFERENCE = 1000
"""An mx queue's preference for its own node: above the stickiness, so it returns there."""
FENCE_MARGIN_SECONDS = 10
"""Pacemaker's timeout for a fence: the agent's own (fence_timeout_seconds) and its start-up."""
FENCE_MONITOR_SECONDS = 60
"""How often the fence device is checked (one API request listing the servers)."""


@dataclass(frozen=True)
class Member:
    """A primitive resource: an agent (class, provider, type) with its parameters."""

    id: str
    agent_class: str
    type: str
    provider: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    timeout: int | None = None
    """Seconds a start or stop may take; None: failover.service_timeout_seconds."""
    why: str = ""


@dataclass(frozen=True)
class Group:
    id: str
    members: list[Member]
    why: str


@dataclass(frozen=True)
class Location:
    id: str
    resource: str
    node: str
    score: str
    discover: bool = True
    """False: never probe the resource on that node (it cannot run there, and a probe would
    find another resource's service of the same unit)."""


@dataclass(frozen=True)
class Colocation:
    id: str
    resource: str
    with_resource: str
    score: str = "INFINITY"
    """INFINITY: where with_resource runs; a negative score: away from it if possible."""


@dataclass(frozen=True)
class Order:
    id: str
    first: str
    then: str


@dataclass
class Layout:
    """What one cluster runs and where."""

    primitives: list[Member]
    """Resources outside any group."""
    groups: list[Group]
    locations: list[Location] = field(default_factory=list)
    colocations: list[Colocation] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)


def filesystem(resource_id: str, device: str, directory: str) -> Member:
    options = ",".join(o for o in volumes.MOUNT_OPTIONS.split(",") if o != "defaults")
    return Member(
        resource_id,
        "ocf",
        "Filesystem",
        "heartbeat",
        {"device": device, "directory": directory, "fstype": volumes.FILESYSTEM,
         "options": options},
    )  # fmt: skip


def volume(deployment, resource_id: str, planned, why: str = "") -> Member:
    """A volume attached to the node the resource runs on (ocf:mailstack:hcloud-volume)."""
    return Member(
        resource_id,
        "ocf",
        "hcloud-volume",
        "mailstack",
        {"volume": planned.name, "device": planned.linux_device, "env_file": ENV_FILE},
        timeout=deployment.settings.failover.volume_timeout_seconds,
        why=why,
    )


def takeover_config_dir(host_name: str) -> str:
    """The configuration of the Postfix instance that delivers a dead mx's queue (the unit
    `postfix@<node>`, Debian's unit for /etc/postfix-<name>)."""
    return f"/etc/postfix-{host_name}"


def takeover_queue(host_name: str) -> str:
    """Where a survivor mounts a dead mx's queue volume."""
    return f"/var/spool/postfix-{host_name}"


def mailstore_layout(deployment) -> Layout:
    mail = deployment.mail_volume()
    return Layout(
        primitives=[],
        # The fence device waits on the passive node: when the active node dies, the survivor
        # fences at once instead of starting the device first.
        colocations=[Colocation("fence-hcloud-apart-from-mail", "fence-hcloud", "mail", "-100")],
        groups=[
            Group(
                "mail",
                [
                    volume(deployment, "mail-volume", mail),
                    filesystem("mail-filesystem", mail.linux_device, dovecot.MAIL_ROOT),
                    Member("dovecot", "systemd", dovecot.UNIT),
                ],
                "The active node: the mail volume, its filesystem at the mail root, Dovecot.",
            )
        ],
    )


def mx_layout(deployment) -> Layout:
    nodes = deployment.hosts("mx")
    layout = Layout(primitives=[], groups=[])
    for host in nodes:
        name = host.name
        queue = deployment.data_volume(host)
        attached, home, away = f"queue-{name}", f"home-{name}", f"takeover-{name}"
        layout.primitives.append(
            volume(deployment, attached, queue, f"{name}'s queue volume, preferring {name}.")
        )
        layout.groups.extend(
            [
                Group(
                    home,
                    [
                        filesystem(
                            f"{attached}-at-home", queue.linux_device, volumes.QUEUE_DIRECTORY
                        ),
                        Member(f"postfix-{name}", "systemd", "postfix"),
                    ],
                    f"{name} serves: its queue at the queue directory, its Postfix.",
                ),
                Group(
                    away,
                    [
                        filesystem(
                            f"{attached}-taken-over", queue.linux_device, takeover_queue(name)
                        ),
                        Member(
                            f"postfix-takeover-{name}",
                            "systemd",
                            f"postfix@{volumes.systemd_escape(name)}",
                        ),
                        # What waits in the queue is retried now, not at its next retry time.
                        Member(
                            f"flush-takeover-{name}",
                            "systemd",
                            f"mailstack-flush-queue@{volumes.systemd_escape(name)}",
                        ),
                    ],
                    f"While {name} is dead: a survivor delivers its queue.",
                ),
            ]
        )
        layout.locations.append(
            Location(f"{attached}-prefers-home", attached, name, str(HOME_PREFERENCE))
        )
        layout.locations += [
            Location(f"{home}-not-on-{other.name}", home, other.name, "-INFINITY", False)
            for other in nodes
            if other.name != name
        ]
        layout.locations.append(Location(f"{away}-not-on-{name}", away, name, "-INFINITY", False))
        for group in (home, away):
            layout.colocations.append(Colocation(f"{group}-with-queue", group, attached))
            layout.orders.append(Order(f"{attached}-before-{group}", attached, group))
    return layout


def layout(deployment, role: str) -> Layout:
    return mailstore_layout(deployment) if role == "mailstore" else mx_layout(deployment)


def cib_file(deployment, role: str) -> ConfigFile:
    failover = deployment.settings.failover
    plan = layout(deployment, role)
    return ConfigFile.template(
        "pacemaker",
        CIB,
        effect="none",
        cluster_name=deployment.cluster_name(role),
        nodes=[host.name for host in deployment.hosts(role)],
        fence_agent=FENCE_AGENT,
        env_file=ENV_FILE,
        fence_timeout=failover.fence_timeout_seconds,
        fence_action_timeout=failover.fence_timeout_seconds + FENCE_MARGIN_SECONDS,
        fence_monitor_interval=FENCE_MONITOR_SECONDS,
        api_timeout=failover.api_request_timeout_seconds * 2,
        service_timeout=failover.service_timeout_seconds,
        monitor_interval=failover.monitor_interval_seconds,
        stickiness=STICKINESS,
        failures_before_move=failover.failures_before_move,
        failure_timeout=failover.failure_timeout_seconds,
        primitives=plan.primitives,
        groups=plan.groups,
        locations=plan.locations,
        colocations=plan.colocations,
        orders=plan.orders,
    )


def config_files(deployment, host) -> list[ConfigFile]:
    role = corosync.cluster_role(deployment, host)
    if role is None:
        return []
    cloud = deployment.cloud_api
    env = f"HCLOUD_TOKEN={cloud.token}\n"
    if cloud.endpoint:
        env = f"HCLOUD_ENDPOINT={cloud.endpoint}\n" + env
    return [
        ConfigFile.literal(ENV_FILE, env, effect="none", mode="600"),
        ConfigFile.template("pacemaker", FENCE_AGENT_PATH, effect="none", mode="755", code=CODE),
        ConfigFile.template("pacemaker", VOLUME_AGENT_PATH, effect="none", mode="755", code=CODE),
        cib_file(deployment, role),
    ]
