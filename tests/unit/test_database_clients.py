"""Every job's way to the account database comes from one builder (postgresql.client_dsn): all
db nodes, TLS, the connect and TCP timeouts; writers only to the primary, readers to any node
chosen at random; each as its own role (the trace ingesters as the insert-only trace role)."""

import json
import tempfile
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from mailstack.deploy.deployment import REPOSITORY, Deployment
from mailstack.secrets import SecretStore
from mailstack.services import dovecot, policyd, postgresql, resellerhosts, tracing
from mailstack.settings import load_stack_file


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    settings = load_stack_file(REPOSITORY / "stacks/Pulumi.production.yaml")
    secrets = SecretStore(Path(tempfile.mkdtemp(prefix="mailstack-dsn-")) / "secrets.json")
    return Deployment.planned(settings, secrets, "production")


def file_json(files, path: str) -> dict:
    (found,) = [f for f in files if f.path == path]
    return json.loads(found.render())


def clients(deployment) -> dict[str, str]:
    mx, mailstore = deployment.hosts("mx")[0], deployment.hosts("mailstore")[0]
    config = policyd.policyd_config(deployment, mx)
    return {
        "policy service lookups": config.accounts_dsn,
        "policy service holds": config.holds_dsn,
        "mail purge": file_json(dovecot.purge_files(deployment, mailstore), dovecot.PURGE_CONFIG)[
            "accounts_dsn"
        ],
        "reseller hosts": resellerhosts.job_config(deployment)["accounts_dsn"],
        "trace ingester": file_json(tracing.config_files(deployment, mx), tracing.CONFIG)["dsn"],
    }


EXPECTED = {
    "policy service lookups": (postgresql.LOOKUP_USER, "any", "random"),
    "policy service holds": (postgresql.LOOKUP_USER, "read-write", "disable"),
    "mail purge": (postgresql.LOOKUP_USER, "any", "random"),
    "reseller hosts": (postgresql.PANEL_USER, "read-write", "disable"),
    "trace ingester": (postgresql.TRACE_USER, "read-write", "disable"),
}


def test_each_job_reaches_the_nodes_it_needs_as_its_own_role(deployment):
    nodes = ",".join(deployment.addresses("db"))
    for name, dsn in clients(deployment).items():
        values = conninfo_to_dict(dsn)
        user, attrs, balance = EXPECTED[name]
        assert (values["user"], values["target_session_attrs"]) == (user, attrs), name
        assert values["load_balance_hosts"] == balance, name
        assert values["host"] == nodes and values["sslmode"] == "require", name
        assert values["tcp_user_timeout"] == str(postgresql.TCP_USER_TIMEOUT_MS), name
        assert values["dbname"] == postgresql.DATABASE, name


def test_the_trace_role_is_admitted_only_from_the_nodes_that_log_mail(deployment):
    sources = {
        entry["address"]
        for entry in postgresql.clients(deployment)
        if entry["user"] == postgresql.TRACE_USER
    }
    mail_nodes = deployment.hosts("mx") + deployment.hosts("mailstore")
    assert sources == {str(h.private_ip) for h in mail_nodes}
    assert postgresql.TRACE_USER in postgresql.account_roles(deployment)
