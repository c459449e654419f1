"""etcd 3.5 on the db nodes: the store Patroni keeps its leader lock and cluster state in.

Three members (one per db node) keep a majority through the loss of any one. Members talk to
each other on the peer port and Patroni on the client port, both on the private addresses only.
Debian's unit reads its settings from the environment file /etc/default/etcd.

No etcd users: with authentication on, Patroni 4.0.7's etcd3 client kept failing after the
member it used died ("Invalid auth token", then `KVCache.run <InvalidArgument>` in a loop,
patroni/patroni#3552), and no replica took over in the failover drill. Only the db nodes may
reach etcd's ports (the host firewall's table); nothing but Patroni's state is stored there.
"""

from mailstack.deploy.configfile import ConfigFile

UNIT = "etcd"
PACKAGES = ["etcd-server", "etcd-client"]
CLIENT_PORT = 2379
PEER_PORT = 2380
METRICS_PORT = 2381
"""/metrics and /health alone, for Prometheus: the client port would also take writes."""
DATA_DIR = "/var/lib/etcd/mailstack"
"""Not Debian's default directory: the package starts a throw-away single member there on
install, whose data must not become the cluster's."""
CLUSTER_TOKEN = "mailstack-etcd"
ENVIRONMENT = "/etc/default/etcd"
NAMESPACE = "/service/"
"""Where Patroni keeps its keys."""
# etcd has no configuration checker: a member started from the file in a scratch directory, on
# loopback ports of its own and as a cluster of itself, that still runs after three seconds read
# it (an unparsable value stops it at once, naming the variable).
CHECK = (
    "d=$(mktemp -d) && ( set -a; . /etc/default/etcd; ETCD_NAME=check ETCD_DATA_DIR=$d/data"
    " ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:12379"
    " ETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:12379"
    " ETCD_LISTEN_PEER_URLS=http://127.0.0.1:12380"
    " ETCD_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.1:12380"
    " ETCD_LISTEN_METRICS_URLS=http://127.0.0.1:12381"
    " ETCD_INITIAL_CLUSTER=check=http://127.0.0.1:12380 ETCD_INITIAL_CLUSTER_STATE=new; set +a;"
    " timeout 3 etcd >$d/log 2>&1; r=$?; [ $r = 124 ] || cat $d/log; rm -rf $d; [ $r = 124 ] )"
)


def member_name(host) -> str:
    return host.name


def client_urls(deployment) -> list[str]:
    return [f"http://{address}:{CLIENT_PORT}" for address in deployment.addresses("db")]


def config_files(deployment, host) -> list[ConfigFile]:
    members = deployment.hosts("db")
    settings = deployment.settings.database
    return [
        ConfigFile.template(
            "etcd",
            ENVIRONMENT,
            user="root",
            group="etcd",
            mode="640",
            name=member_name(host),
            data_dir=DATA_DIR,
            private_ip=str(host.private_ip),
            client_port=CLIENT_PORT,
            peer_port=PEER_PORT,
            metrics_port=METRICS_PORT,
            initial_cluster=",".join(
                f"{member_name(m)}=http://{m.private_ip}:{PEER_PORT}" for m in members
            ),
            token=CLUSTER_TOKEN,
            # Patroni's lock must never outlive etcd's own failure detection.
            election_timeout_ms=min(5000, settings.retry_timeout_seconds * 1000 // 2),
        )
    ]


def etcdctl() -> str:
    """etcdctl against the local member."""
    return f"etcdctl --endpoints=http://127.0.0.1:{CLIENT_PORT}"
