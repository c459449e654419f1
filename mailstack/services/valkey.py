"""Valkey on the db nodes: one instance per use, each a primary with replicas on the other db
nodes, and Sentinel on every db node naming the current primaries.

- `policy` (port 6379): the policy service's greylisting and limit windows;
- `filters` (port 6380): rspamd's Bayes statistics, fuzzy hashes and caches.

Each use has its own memory limit and eviction policy (settings `valkey.policy`,
`valkey.filters`). Clients follow Sentinel (`SENTINEL_PORT`) to the primary of
`MASTER_NAMES[use]`; in the `single` profile there is one node, no Sentinel, and clients go
straight to it.

Valkey and Sentinel rewrite their own configuration files (a failover writes `replicaof`, known
replicas and epochs, and CONFIG REWRITE writes out every setting, so an included file would be
shadowed). So each file is written once, checked before the first start, and then left to them;
later changes of the settings are applied at run time (CONFIG SET and CONFIG REWRITE, SENTINEL
SET), which persists them in those files and needs no restart (`runtime_settings`,
`sentinel_wanted`).
"""

from dataclasses import dataclass
from urllib.parse import quote

from mailstack.deploy.configfile import ConfigFile

USES = ("policy", "filters")
PORTS = {"policy": 6379, "filters": 6380}
MASTER_NAMES = {use: f"mailstack-{use}" for use in USES}
SENTINEL_PORT = 26379
PASSWORD_SECRET = "valkey_password"
PACKAGES = ["valkey-server", "valkey-tools"]
SENTINEL_PACKAGES = ["valkey-sentinel"]
SENTINEL_UNIT = "valkey-sentinel"
SENTINEL_CONFIG = "/etc/valkey/sentinel.conf"
SENTINEL_MANAGED = "/etc/valkey/mailstack-sentinel.conf"
DATA_ROOT = "/var/lib/valkey"
MARK = "Written once by mailstack"
"""The first line of every file written here: where it is missing, the file is not ours yet."""


def unit(use: str) -> str:
    return f"valkey-server@{use}"


def main_config(use: str) -> str:
    """The file the unit starts with (Debian's valkey-server@.service): Valkey's own."""
    return f"/etc/valkey/valkey-{use}.conf"


def data_dir(use: str) -> str:
    return f"{DATA_ROOT}/{use}"


def _throwaway_start(config: str, name: str, extra: str = "") -> str:
    """A server started on the file on no TCP port of its own, with nothing saved, that still
    runs after three seconds read it; one that cannot read it stops at once, naming the line.
    Valkey has no configuration checker."""
    return (
        f"cp {config} /tmp/{name}.conf &&"
        f" timeout 3 valkey-server /tmp/{name}.conf {extra} --port 0 --bind 127.0.0.1"
        f" --daemonize no --unixsocket /tmp/{name}.sock --supervised no --save ''"
        f" --appendonly no --dir /tmp --logfile '' --pidfile /tmp/{name}.pid"
        f" >/tmp/{name}.log 2>&1;"
        f" [ $? = 124 ] || {{ cat /tmp/{name}.log; false; }}"
    )


def check(use: str) -> str:
    # A replica's file names its primary; the check reads the file and connects nowhere.
    return _throwaway_start(main_config(use), f"valkey-{use}-config-check", "--replicaof no one")


SENTINEL_CHECK = _throwaway_start(SENTINEL_CONFIG, "sentinel-config-check", "--sentinel")
CHECK = " && ".join(check(use) for use in USES)
"""Both instances' files (the sentinel's has SENTINEL_CHECK)."""


def url(server: str, port: int, password: str, database: int = 0) -> str:
    """A redis:// URL as the clients' libraries take it."""
    return f"redis://:{quote(password, safe='')}@{server}:{port}/{database}"


@dataclass(frozen=True)
class ValkeyStore:
    """How a client reaches one use's Valkey: through the Sentinels, or straight to the node."""

    use: str
    port: int
    password: str
    first_primary: str
    """The initial primary's address: where replicas start from, and the only node without
    Sentinel."""
    sentinels: tuple[str, ...]
    """HOST:PORT of every Sentinel; empty without Sentinel (the single profile)."""
    master_name: str

    def url(self, database: int = 0) -> str:
        return url(self.first_primary, self.port, self.password, database)


def config_files(deployment, host) -> list[ConfigFile]:
    """Every file Valkey and Sentinel start with on a db node (the role writes each only where
    none exists yet)."""
    instances = [f for use in USES for f in instance_files(deployment, host, use)]
    return instances + (sentinel_files(deployment, host) if deployment.db_clustered else [])


def instance_files(deployment, host, use: str) -> list[ConfigFile]:
    """One use's instance as it first starts (the role writes it only where none exists yet):
    every setting, and on a replica where replication starts from."""
    settings = getattr(deployment.settings.valkey, use)
    store = deployment.valkey_store(use)
    return [
        # One template for both instances, each installed at its own path.
        ConfigFile(
            path=main_config(use),
            source="valkey/etc/valkey/valkey-instance.conf.j2",
            user="valkey",
            group="valkey",
            mode="640",
            context={
                "use": use,
                "private_ip": str(host.private_ip),
                "port": store.port,
                "password": store.password,
                "data_dir": data_dir(use),
                "maxmemory_mib": settings.maxmemory_mib,
                "maxmemory_policy": settings.maxmemory_policy,
                "replicated": bool(store.sentinels),
                "replica_of": store.first_primary
                if store.sentinels and str(host.private_ip) != store.first_primary
                else None,
            },
        )
    ]


def runtime_settings(deployment, use: str) -> dict[str, str]:
    """The settings a running instance must have (CONFIG GET names and values); the role sets
    and persists those that differ."""
    settings = getattr(deployment.settings.valkey, use)
    return {
        "maxmemory": str(settings.maxmemory_mib * 1024 * 1024),
        "maxmemory-policy": settings.maxmemory_policy,
    }


def sentinel_files(deployment, host) -> list[ConfigFile]:
    """Sentinel as it first starts (written only where none exists yet): the primaries to
    watch as they are at the start."""
    sentinel = deployment.settings.valkey.sentinel
    return [
        ConfigFile.template(
            "valkey",
            SENTINEL_CONFIG,
            user="valkey",
            group="valkey",
            mode="640",
            private_ip=str(host.private_ip),
            port=SENTINEL_PORT,
            stores=[deployment.valkey_store(use) for use in USES],
            sentinel=sentinel,
        )
    ]


def sentinel_wanted(deployment) -> dict[str, dict[str, str]]:
    """Per monitored name, the options the settings want (as SENTINEL MASTER reports them)."""
    sentinel = deployment.settings.valkey.sentinel
    return {
        MASTER_NAMES[use]: {
            "quorum": str(sentinel.quorum),
            "down-after-milliseconds": str(sentinel.down_after_ms),
            "failover-timeout": str(sentinel.failover_timeout_ms),
        }
        for use in USES
    }
