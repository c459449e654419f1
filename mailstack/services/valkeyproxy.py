"""HAProxy on the mx hosts in front of the Valkey `filters` primary, for rspamd.

rspamd 3.12 follows Sentinel only in its scanner and fuzzy workers, once a minute, and never in
its controller (lua_redis.lua adds the Sentinel query to those workers alone), so after a Valkey
failover the controller's learning and, for up to a minute, the workers' writes went to the
demoted primary and failed (READONLY). Instead every rspamd worker talks to a local address,
and HAProxy sends each connection to the db node that answers `role:master`, checked every
`CHECK_INTERVAL_MS`; connections to a node that stops being the primary are cut, so rspamd
reconnects to the new one. This is the HAProxy health check for Redis primaries that HAProxy's
own documentation and Redis deployments use; Sentinel still decides which node is the primary.

Clustered profiles only: without Sentinel there is one Valkey, which rspamd reaches directly.
"""

from mailstack.deploy.configfile import ConfigFile
from mailstack.services import valkey

UNIT = "mailstack-valkey-proxy.service"
CONFIG = "/etc/haproxy/valkey-proxy.cfg"
CHECK = f"haproxy -c -q -f {CONFIG}"
LISTEN_ADDRESS = "127.0.0.1"
LOCAL_PORTS = {"filters": 16380}
"""use -> the local port where that use's primary answers (not Valkey's own port: in the single
profile Valkey itself may run on the same host)."""
CHECK_INTERVAL_MS = 1000
PACKAGES = ["haproxy"]


def server_for(deployment, use: str) -> str:
    """HOST:PORT a client on an mx host uses for one Valkey use: the local proxy in a cluster,
    the one Valkey node otherwise."""
    if deployment.db_clustered:
        return f"{LISTEN_ADDRESS}:{LOCAL_PORTS[use]}"
    store = deployment.valkey_store(use)
    return f"{store.first_primary}:{store.port}"


def config_files(deployment, host) -> list[ConfigFile]:
    stores = [deployment.valkey_store(use) for use in LOCAL_PORTS]
    proxies = [
        {
            "use": store.use,
            "local_port": LOCAL_PORTS[store.use],
            "port": store.port,
            "servers": deployment.addresses("db"),
        }
        for store in stores
    ]
    return [
        # The health check logs in with Valkey's password: readable by HAProxy alone.
        ConfigFile.template(
            "valkeyproxy",
            CONFIG,
            group="haproxy",
            mode="640",
            proxies=proxies,
            listen_address=LISTEN_ADDRESS,
            password=deployment.secrets.get(valkey.PASSWORD_SECRET),
            check_interval_ms=CHECK_INTERVAL_MS,
        ),
        ConfigFile.template("valkeyproxy", f"/etc/systemd/system/{UNIT}", config=CONFIG),
    ]
