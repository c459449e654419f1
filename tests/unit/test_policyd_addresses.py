"""Normalising greylisting triplets: envelope tags, client networks, allow-lists."""

import socket
from ipaddress import ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstack.policyd.addresses import (
    NetworkSet,
    client_network,
    normalise_recipient,
    normalise_sender,
    parse_address,
)
from mailstack.policyd.allowlist import Allowlist, read_shipped_list
from mailstack.settings.policies import GreylistingSettings


@pytest.mark.parametrize(
    ("sender", "normal"),
    [
        ("Alice@Example.ORG", "alice@example.org"),
        ("", "<>"),
        ("<>".strip("<>"), "<>"),
        ("prvs=1234abcdef=alice@example.org", "alice@example.org"),
        ("PRVS=0123456789=Alice@Example.org", "alice@example.org"),
        ("msprvs1=17abcdefgh=bounces@example.org", "bounces@example.org"),
        ("btv1==1234abcd==alice@example.org", "alice@example.org"),
        ("SRS0=HHH=TT=orig.example=alice@forwarder.example", "alice@orig.example"),
        (
            "SRS1=HHH=first.example==HHH=TT=orig.example=alice@second.example",
            "alice@orig.example",
        ),
        ("SRS0=x=yz=orig.example=prvs=1234abcdef=alice@fwd.example", "alice@orig.example"),
        ("alice+newsletter@example.org", "alice@example.org"),
        (
            "bounce-1234-5678-bob=example.net@lists.example.org",
            "bounce-#-#-bob=example.net@lists.example.org",
        ),
        ("msg-a1b2c3d4e5f6a7b8c9d0@mailer.example", "msg-#@mailer.example"),
        ("john1985@example.org", "john1985@example.org"),
        ("postmaster", "postmaster"),
    ],
)
def test_sender_normalisation(sender, normal):
    assert normalise_sender(sender) == normal


def test_verp_senders_of_one_list_share_a_key():
    first = normalise_sender("bounce-mc.us5_8812.40211-bob=example.net@mail41.example.com")
    second = normalise_sender("bounce-mc.us5_8812.40299-bob=example.net@mail41.example.com")
    assert first == second


def test_batv_tags_of_different_days_share_a_key():
    assert normalise_sender("prvs=1123abcdef=alice@example.org") == normalise_sender(
        "prvs=2456fedcba=alice@example.org"
    )


emails = st.from_regex(
    r"(prvs=[0-9a-f]{10}=|SRS0=[a-z]{4}=[a-z]{2}=[a-z]{3,8}\.org=)?[A-Za-z0-9._+=-]{1,30}@[A-Za-z0-9.-]{1,30}",
    fullmatch=True,
)


@given(st.one_of(emails, st.text(max_size=80)))
def test_normalising_twice_changes_nothing(sender):
    once = normalise_sender(sender)
    assert normalise_sender(once) == once


@given(emails)
def test_normalising_ignores_case(sender):
    assert normalise_sender(sender.upper()) == normalise_sender(sender.lower())


def test_recipients_are_compared_in_lower_case():
    assert normalise_recipient(" Bob@Example.NET ") == "bob@example.net"


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("192.0.2.77", "192.0.2.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.1", "192.0.2.0/24"),
    ],
)
def test_clients_are_grouped_by_network(address, network):
    assert client_network(parse_address(address), 24, 64) == network


def test_prefixes_come_from_the_settings():
    assert client_network(parse_address("198.51.100.200"), 28, 64) == "198.51.100.192/28"
    assert client_network(parse_address("2001:db8::1"), 24, 48) == "2001:db8::/48"


@pytest.mark.parametrize("text", ["unknown", "", "192.0.2", "1", "::g", "192.0.2.1/24"])
def test_what_is_not_an_address_is_none(text):
    assert parse_address(text) is None


@given(st.ip_addresses(), st.integers(0, 32), st.integers(0, 128))
def test_an_address_is_in_its_own_network(address, v4_prefix, v6_prefix):
    parsed = parse_address(str(address))
    network = ip_network(client_network(parsed, v4_prefix, v6_prefix))
    assert address in network or (address.version == 6 and address.ipv4_mapped in network)
    assert parsed in NetworkSet([network])


def test_network_set_membership():
    networks = NetworkSet([ip_network("10.0.0.0/8"), ip_network("2001:db8::/32")])
    assert parse_address("10.200.1.1") in networks
    assert parse_address("11.0.0.1") not in networks
    assert parse_address("2001:db8:ffff::1") in networks
    assert parse_address("2001:db9::1") not in networks
    assert None not in networks
    assert parse_address("10.0.0.1")[0] == socket.AF_INET


def test_allowlist_reasons():
    allowlist = Allowlist.from_settings(
        GreylistingSettings(
            allow_client_networks=["203.0.113.0/24"],
            allow_client_hostname_suffixes=["partner.example"],
            allow_sender_domains=["trusted.example"],
            allow_recipients=["postmaster@example.net", "@abuse.example.net"],
            use_shipped_allowlist=True,
        )
    )
    other = parse_address("198.51.100.1")
    assert allowlist.reason(parse_address("203.0.113.9"), "unknown", "a@b.c", "x@y.z")
    assert allowlist.reason(other, "mx1.partner.example", "a@b.c", "x@y.z")
    assert not allowlist.reason(other, "notpartner.example", "a@b.c", "x@y.z")
    assert allowlist.reason(other, "unknown", "a@mail.trusted.example", "x@y.z")
    assert allowlist.reason(other, "unknown", "a@b.c", "postmaster@example.net")
    assert allowlist.reason(other, "unknown", "a@b.c", "anyone@abuse.example.net")
    assert allowlist.reason(other, "mail-wm1-f54.google.com", "a@b.c", "x@y.z")
    assert not allowlist.reason(other, "unknown", "a@b.c", "x@y.z")


def test_unverified_client_names_do_not_count():
    allowlist = Allowlist.from_settings(GreylistingSettings())
    # Postfix says "unknown" when the reverse name does not resolve back to the client.
    assert not allowlist.reason(parse_address("198.51.100.1"), "unknown", "a@b.c", "x@y.z")


def test_the_shipped_list_can_be_turned_off():
    allowlist = Allowlist.from_settings(GreylistingSettings(use_shipped_allowlist=False))
    assert not allowlist.reason(parse_address("198.51.100.1"), "mail.google.com", "", "x@y.z")


def test_the_shipped_list_is_well_formed():
    suffixes, networks = read_shipped_list()
    assert "google.com" in suffixes
    assert all("." in s and s == s.lower() for s in suffixes)
    assert all(n.prefixlen > 0 for n in networks)
