"""What roles know about the environment they deploy: settings, the inventory contract, secrets.

A `Deployment` is built once per pyinfra run from a host's inventory data (`for_host`) or, in
tests, from the settings alone (`planned`: the hosts the plan gives, no SSH). Every fact roles
read about other hosts comes from here, computed once: whether the db nodes run as clusters,
how readers and writers reach the account database, how each Valkey use is reached (through
Sentinel), the load balancers' addresses, the first node of a role.
"""

import functools
import gzip
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from mailstack.failover.hetzner import CloudConfig
from mailstack.inventory import Inventory, InventoryHost, InventoryVolume, planned_inventory
from mailstack.secrets import SecretStore, secret_store
from mailstack.services import postgresql, valkey
from mailstack.settings import Settings
from mailstack.settings.plan import cluster_roles

REPOSITORY = Path(__file__).resolve().parents[2]
APP_ROOT = "/opt/mailstack"
APP_SOURCE = f"{APP_ROOT}/src"
APP_VENV = f"{APP_ROOT}/venv"
MONITORING_ROLE = "web"
"""The role whose hosts run Prometheus and Alertmanager (docs/architecture.md says why)."""


CODE_PACKAGES = ("mailstack", "panel")
"""The repository's packages the hosts run (roles/venv.py copies them to APP_SOURCE)."""


@functools.cache
def code_archive() -> bytes:
    """CODE_PACKAGES as one gzipped tar (bytes) whose bytes depend only on the files' paths and
    contents (sorted, no times or owners; caches left out): one upload when the code changed,
    one checksum when it did not."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for package in CODE_PACKAGES:
            for path in sorted((REPOSITORY / package).rglob("*")):
                if "__pycache__" in path.parts or path.suffix == ".pyc" or path.is_dir():
                    continue
                entry = tarfile.TarInfo(str(path.relative_to(REPOSITORY)))
                entry.size, entry.mode = path.stat().st_size, 0o644
                with path.open("rb") as content:
                    archive.addfile(entry, content)
    return buffer.getvalue()


def code_version() -> str:
    """A digest of the code roles/venv.py copies to hosts, so services restart when it changes."""
    return hashlib.sha256(code_archive()).hexdigest()[:16]


@dataclass(frozen=True)
class DatabaseClient:
    """How one client role reaches the account database (libpq parameters)."""

    hosts: tuple[str, ...]
    """Every db node: libpq tries them in turn (a multi-host connection string)."""
    port: int
    name: str
    user: str
    password: str
    target_session_attrs: str
    """'read-write': only the primary will do (libpq skips the others); 'any': any node that
    answers (replicas serve reads)."""


@dataclass(frozen=True)
class Deployment:
    """One environment as the roles see it."""

    settings: Settings
    inventory: Inventory
    secrets: SecretStore
    cloud: CloudConfig | None = None
    """The Hetzner API the clusters' agents use; None: the lab's own, or the environment's
    HCLOUD_TOKEN (see `cloud_api`)."""

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def for_host(cls, host) -> "Deployment":
        """The deployment a pyinfra host belongs to (from the inventory data it carries)."""
        return _from_contract(host.data.get("inventory_contract"))

    @classmethod
    def planned(
        cls, settings: Settings, secrets: SecretStore, stack: str, cloud: CloudConfig | None = None
    ) -> "Deployment":
        """The environment as its settings plan it, without hosts to ask (template tests)."""
        return cls(settings, planned_inventory(settings, stack), secrets, cloud)

    @property
    def lab_state(self):
        """The lab's state (lab-only settings, addresses); only lab-only roles ask for it."""
        from mailstack.lab.state import LabState

        if not self.inventory.lab_file:
            raise RuntimeError("not a lab: the inventory names no lab_file")
        return LabState.read(self.inventory.lab_file)

    @property
    def lab_pki_dir(self) -> Path:
        """The lab CA's directory beside the lab's state (`.lab/<name>/pki`)."""
        return Path(self.inventory.lab_file).parent / "pki"

    # --- hosts ------------------------------------------------------------------------------

    def hosts(self, role: str) -> list[InventoryHost]:
        """The hosts of a role (an inventory group), in inventory order."""
        return self.inventory.with_role(role)

    def host(self, name: str) -> InventoryHost:
        return self.inventory.host(name)

    def first(self, role: str) -> InventoryHost:
        """The role's first host: where one-off work of the role runs (e.g. migrations)."""
        return self.hosts(role)[0]

    def addresses(self, role: str) -> list[str]:
        """Private addresses of a role's hosts, in inventory order."""
        return [str(host.private_ip) for host in self.hosts(role)]

    @functools.cached_property
    def load_balancer_addresses(self) -> list[str]:
        """Private addresses the load balancers connect from (trusted for PROXY protocol)."""
        return [str(balancer.private_ip) for balancer in self.inventory.load_balancers]

    @functools.cached_property
    def monitoring_addresses(self) -> list[str]:
        """Private addresses of the monitoring hosts: Prometheus scrapes from them, Alertmanager
        sends the platform's own mail from them."""
        return self.addresses(MONITORING_ROLE)

    # --- volumes and clusters -----------------------------------------------------------------

    def volume(self, name: str) -> InventoryVolume:
        return self.inventory.volume(name)

    def volumes_of(self, host: InventoryHost) -> list[InventoryVolume]:
        """The volumes that belong to a host (first attached there): its own data volume, and
        for the first mailstore node the pair's mail volume."""
        return [volume for volume in self.inventory.volumes if volume.server == host.name]

    def mail_volume(self) -> InventoryVolume:
        """The mailstore pair's one mail volume."""
        return self.volume(f"{self.settings.environment.name}-mail")

    def data_volume(self, host: InventoryHost) -> InventoryVolume | None:
        """A host's own data volume (`<host>-data`: an mx's queue, a db node's database, the
        single profile's everything), None where its role has none."""
        name = f"{host.name}-data"
        return next((v for v in self.inventory.volumes if v.name == name), None)

    @property
    def cluster_roles(self) -> tuple[str, ...]:
        """The roles whose hosts form a failover cluster (`settings.plan.cluster_roles`)."""
        return cluster_roles(self.settings)

    def clustered(self, role: str) -> bool:
        """Whether the role's hosts form a failover cluster."""
        return role in self.cluster_roles

    def cluster_name(self, role: str) -> str:
        """Corosync's cluster name of a role's cluster, also the quorum device's client name."""
        return f"{self.settings.environment.name}-{role}"

    @functools.cached_property
    def quorum_device_host(self) -> InventoryHost:
        """Where corosync-qnetd runs, the third vote of every cluster: the first db node (a
        host outside the clusters it decides for)."""
        return self.first("db")

    @functools.cached_property
    def cloud_api(self) -> CloudConfig:
        """The Hetzner API endpoint and token the fence and volume agents use on the hosts.

        In the lab its own API (`.lab/<name>/hcloud.env`); elsewhere the token `mailstack
        deploy --stack` hands over from the stack's secret output, in the environment as
        HCLOUD_TOKEN (HCLOUD_ENDPOINT only to point elsewhere than Hetzner). Raises
        hetzner.ConfigurationError, naming what is missing."""
        if self.cloud is not None:
            return self.cloud
        if self.inventory.lab_file:
            return CloudConfig.load(Path(self.inventory.lab_file).parent / "hcloud.env")
        return CloudConfig.load(environ=os.environ)

    def load_balancer(self, purpose: str) -> str:
        """The private address of the load balancer for 'smtp', 'mailaccess' or 'http'."""
        return next(
            str(b.private_ip) for b in self.inventory.load_balancers if b.purpose == purpose
        )

    # --- clients of shared services ---------------------------------------------------------

    @property
    def db_clustered(self) -> bool:
        """Whether the db nodes run the clusters (Patroni with etcd, Valkey with Sentinel):
        every profile but `single`, whose one host runs PostgreSQL and Valkey on their own."""
        return self.settings.topology.profile != "single"

    def _database_client(
        self, database: str, user: str, password_secret: str, target_session_attrs: str
    ) -> DatabaseClient:
        """A role's way to a database on the db nodes, libpq choosing the node."""
        return DatabaseClient(
            hosts=tuple(self.addresses("db")),
            port=postgresql.PORT,
            name=database,
            user=user,
            password=self.secrets.get(password_secret),
            target_session_attrs=target_session_attrs,
        )

    @functools.cached_property
    def database_reader(self) -> DatabaseClient:
        """The read-only role Postfix, Dovecot and the policy service look accounts up with:
        any db node answers, replicas as well as the primary, so lookups go on through a
        failover."""
        return self._database_client(
            postgresql.DATABASE, postgresql.LOOKUP_USER, postgresql.LOOKUP_PASSWORD_SECRET, "any"
        )

    @functools.cached_property
    def database_writer(self) -> DatabaseClient:
        """The role that owns the schema (the panel, its migrations and account commands): the
        primary only, found among the db nodes by libpq (target_session_attrs=read-write)."""
        return self._database_client(
            postgresql.DATABASE,
            postgresql.PANEL_USER,
            postgresql.PANEL_PASSWORD_SECRET,
            "read-write",
        )

    @functools.cached_property
    def database_tracer(self) -> DatabaseClient:
        """The role the mx and mailstore nodes store trace lines as (insert only), on the
        primary."""
        return self._database_client(
            postgresql.DATABASE,
            postgresql.TRACE_USER,
            postgresql.TRACE_PASSWORD_SECRET,
            "read-write",
        )

    @functools.cached_property
    def webmail_database(self) -> DatabaseClient:
        """Roundcube's own database and the role that owns it (nothing of the account data)."""
        return self._database_client(
            postgresql.WEBMAIL_DATABASE,
            postgresql.WEBMAIL_USER,
            postgresql.WEBMAIL_PASSWORD_SECRET,
            "read-write",
        )

    def valkey_store(self, use: str) -> valkey.ValkeyStore:
        """How clients reach one use's Valkey ('policy' or 'filters'): through the Sentinels on
        every db node, starting from the first db node; without Sentinel straight to it."""
        nodes = self.addresses("db")
        return valkey.ValkeyStore(
            use=use,
            port=valkey.PORTS[use],
            password=self.secrets.get(valkey.PASSWORD_SECRET),
            first_primary=nodes[0],
            sentinels=tuple(f"{a}:{valkey.SENTINEL_PORT}" for a in nodes)
            if self.db_clustered
            else (),
            master_name=valkey.MASTER_NAMES[use],
        )


@functools.cache
def _from_contract(contract: str | None) -> Deployment:
    if not contract:
        raise RuntimeError("the host's inventory data carries no inventory_contract")
    inventory = Inventory.model_validate_json(contract)
    return Deployment(
        settings=inventory.settings(),
        inventory=inventory,
        secrets=secret_store(inventory.stack, inventory.lab_file),
    )
