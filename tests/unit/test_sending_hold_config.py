"""How the deploy wires sending holds: rspamd reports refused mail of logged-in users to the
policy service on the same mx, which writes holds on the primary; the panel's notices go through
the mx hosts' listener for the platform's own mail, which admits the web hosts."""

import os
import tempfile
from ipaddress import ip_address, ip_network
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from mailstack.deploy.deployment import REPOSITORY, Deployment
from mailstack.secrets import SecretStore
from mailstack.services import firewall, panel, policyd, postfix, rspamd
from mailstack.settings import load_stack_file


def production(**outbound_limit) -> Deployment:
    settings = load_stack_file(REPOSITORY / "stacks/Pulumi.production.yaml")
    if outbound_limit:
        limit = settings.mail.outbound_limit.model_copy(update=outbound_limit)
        settings = settings.model_copy(
            update={"mail": settings.mail.model_copy(update={"outbound_limit": limit})}
        )
    secrets = SecretStore(Path(tempfile.mkdtemp(prefix="mailstack-holds-")) / "secrets.json")
    return Deployment.planned(settings, secrets, "production")


def exporter_conf(deployment) -> str:
    mx = deployment.hosts("mx")[0]
    (found,) = [
        f for f in rspamd.scanner_files(deployment, mx) if f.path.endswith("metadata_exporter.conf")
    ]
    return found.render()


def test_rspamd_reports_to_the_policy_service_on_its_own_host():
    deployment = production()
    port = deployment.settings.mail.policy_service.scan_reports_port
    conf = exporter_conf(deployment)
    assert f'url = "http://127.0.0.1:{port}/scan-refused";' in conf
    assert 'selector = "mailstack_abuse_refused";' in conf
    config = policyd.policyd_config(deployment, deployment.hosts("mx")[0])
    assert config.scan_reports_listen == f"127.0.0.1:{port}"
    # Holds are written on the primary, lookups read any node.
    assert conninfo_to_dict(config.holds_dsn)["target_session_attrs"] == "read-write"
    assert conninfo_to_dict(config.accounts_dsn)["target_session_attrs"] == "any"


def test_without_holds_rspamd_reports_nothing():
    hold = production().settings.mail.outbound_limit.sending_hold.model_copy(
        update={"enabled": False}
    )
    assert "rules" not in exporter_conf(production(sending_hold=hold))
    assert "rules" not in exporter_conf(production(enabled=False))


def test_the_web_hosts_hand_notices_to_the_mx_hosts():
    deployment = production()
    web = deployment.addresses("web")
    mx = deployment.hosts("mx")[0]
    main_cf = next(
        f for f in postfix.config_files(deployment, mx) if f.path == "/etc/postfix/main.cf"
    )
    notice_clients = next(
        line
        for line in main_cf.render().splitlines()
        if line.startswith("mailstack_notice_clients")
    )
    assert all(f"{{ {address} = OK }}" in notice_clients for address in web)
    (rule,) = [
        r
        for r in firewall.rules(deployment, mx)
        if postfix.NOTICES_PORT in r.ports and r.family == "ip"
    ]
    sources = [ip_network(source) for source in rule.sources]
    assert all(any(ip_address(a) in network for network in sources) for a in web)
    environment = panel.environment_file(deployment, deployment.hosts("web")[0]).render()
    assert f"MAILPANEL_NOTICE_RELAY=mx.private:{postfix.NOTICES_PORT}" in environment


def test_the_notice_job_waiting_for_the_database_is_no_failed_unit():
    """The account commands exit EX_TEMPFAIL when no database node takes writes (a failover;
    tests/panel/test_sending_holds.py): the timer's job counts that as a success, its next run
    sends the notices, and no failed unit is left behind each failover."""
    (job,) = [f for f in panel.job_files(panel.NOTICES_UNIT) if f.path.endswith(".service")]
    assert f"SuccessExitStatus={os.EX_TEMPFAIL}" in job.render().splitlines()
