"""The host firewall and the trust the services give by address, on every platform host: nftables
runs the ruleset the deploy renders for the host (mailstack.services.firewall), its input policy
drops, nothing listens that no rule lets a client reach, Postfix trusts no client for its
address, clamd's socket is rspamd's alone."""

import json
from pathlib import Path

import pytest

from mailstack.deploy.deployment import Deployment
from mailstack.secrets import SecretStore
from mailstack.services import clamav, firewall

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def deployment(inventory) -> Deployment:
    # The firewall's table needs the settings and the inventory, no secrets.
    return Deployment(inventory.settings(), inventory, SecretStore(Path("/nonexistent")))


def every_host(hosts):
    seen = set()
    for members in hosts.values():
        for member, host in members:
            if member.name not in seen:
                seen.add(member.name)
                yield member, host


def input_chain(ruleset: dict) -> dict:
    (chain,) = [
        item["chain"]
        for item in ruleset["nftables"]
        if "chain" in item and item["chain"].get("hook") == "input"
    ]
    return chain


def test_every_platform_host_runs_the_ruleset_rendered_for_it(hosts, deployment):
    for member, host in every_host(hosts):
        assert host.package("nftables").is_installed, member.name
        service = host.service("nftables")
        assert service.is_enabled and service.is_running, member.name
        rendered = firewall.config_files(deployment, member)[0].render()
        assert host.file(firewall.RULESET).content_string == rendered, member.name
        ruleset = json.loads(host.check_output("nft -j list ruleset"))
        tables = [item["table"] for item in ruleset["nftables"] if "table" in item]
        assert [(t["family"], t["name"]) for t in tables] == [("inet", firewall.TABLE)]
        chain = input_chain(ruleset)
        assert (chain["table"], chain["policy"]) == (firewall.TABLE, "drop"), member.name
        rules = [item["rule"] for item in ruleset["nftables"] if "rule" in item]
        accepts = [
            r
            for r in rules
            if r["chain"] == chain["name"] and "comment" in r and {"accept": None} in r["expr"]
        ]
        expected = firewall.rules(deployment, member)
        assert [r["comment"] for r in accepts] == [r.why for r in expected], member.name
        # What no rule accepts is refused and counted: TCP with a reset, the rest with ICMP.
        tcp, other = [r["expr"] for r in rules if r["chain"] == chain["name"]][-2:]
        assert tcp[1:] == [{"counter": firewall.REFUSED_COUNTER}, {"reject": {"type": "tcp reset"}}]
        assert other == [
            {"counter": firewall.REFUSED_COUNTER},
            {"reject": {"type": "icmpx", "expr": "admin-prohibited"}},
        ]


def test_nothing_listens_that_no_rule_lets_a_client_reach(hosts, deployment):
    for member, host in every_host(hosts):
        opened = {port for r in firewall.rules(deployment, member) for port in r.ports}
        for line in host.check_output("ss -Htln").splitlines():
            address, _, port = line.split()[3].rpartition(":")
            if address.strip("[]") in ("127.0.0.1", "::1"):
                continue
            assert int(port) in opened, f"{member.name} listens on {address}:{port}, unopened"


def test_postfix_trusts_no_client_for_its_address(hosts):
    for member, host in hosts["mx"]:
        assert host.check_output("postconf -h postscreen_access_list") == "", member.name
        assert host.check_output("postconf -h inet_protocols") == "all", member.name
        restrictions = host.check_output(
            "postconf -h smtpd_client_restrictions smtpd_helo_restrictions "
            "smtpd_sender_restrictions smtpd_relay_restrictions smtpd_recipient_restrictions"
        )
        overrides = host.check_output("postconf -P")
        assert "permit_mynetworks" not in restrictions + overrides, member.name


def test_clamds_socket_is_rspamds_alone(hosts):
    for member, host in hosts["mx"]:
        socket = host.file(clamav.CLAMD_SOCKET)
        assert socket.is_socket and socket.mode == 0o660, member.name
        assert (socket.user, socket.group) == ("clamav", clamav.SOCKET_GROUP), member.name
