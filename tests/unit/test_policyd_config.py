"""Configuration, answer texts, window arithmetic helpers and the RESP codec."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstack.cli import build_parser
from mailstack.policyd.cli import build_config
from mailstack.policyd.config import PolicydConfig, dump_config, load_config
from mailstack.policyd.policy import greylist_text, limit_text, seconds_ceil
from mailstack.policyd.resp import IncompleteReply, ReplyError, encode_command, parse_reply
from mailstack.settings import SettingsError, load_stack_file


def test_seconds_round_up_so_a_retry_is_never_too_early():
    assert seconds_ceil(0) == 0
    assert seconds_ceil(1) == 1
    assert seconds_ceil(1000) == 1
    assert seconds_ceil(1001) == 2
    assert seconds_ceil(-5) == 0


def test_greylist_text_says_greylisted_and_when_to_retry():
    text = greylist_text(299_001, first_attempt=True)
    assert text.startswith("DEFER_IF_PERMIT 4.7.1 ")
    assert "Greylisted" in text
    assert "retry in 300 seconds" in text


def test_limit_text_is_a_4_7_x_with_the_limit_and_the_retry_time():
    text = limit_text("alice@example.net", 60, 300_000, 41_500)
    assert text.startswith("451 4.7.1 ")
    assert "60 recipients in 300 seconds" in text
    assert "retry in 42 seconds" in text
    # A retry time of zero would invite an immediate retry that fails again.
    assert "retry in 1 seconds" in limit_text("a", 1, 1000, 0)


def test_config_file_round_trip(tmp_path):
    config = PolicydConfig(listen="0.0.0.0:10040", valkey_url="redis://10.0.0.5:6379/2")
    path = tmp_path / "policyd.json"
    path.write_text(dump_config(config))
    assert load_config(path) == config


def test_config_errors_name_the_field(tmp_path):
    path = tmp_path / "policyd.json"
    path.write_text(
        json.dumps(
            {
                "listen": "nowhere",
                "outbound_limit": {"default": {"recipients": 0, "window_seconds": 300}},
            }
        )
    )
    with pytest.raises(SettingsError) as raised:
        load_config(path)
    fields = [field for field, _ in raised.value.problems]
    assert "listen" in fields
    assert "outbound_limit.default.recipients" in fields


def test_flags_override_the_policies():
    args = build_parser().parse_args(
        [
            "policyd",
            "--listen",
            "127.0.0.1:9999",
            "--valkey",
            "redis://127.0.0.1:7000/0",
            "--greylist-delay",
            "60",
            "--outbound-limit",
            "100/600",
            "--on-store-failure",
            "allow",
            "--trusted",
            "10.0.0.0/8",
        ]
    )
    config = build_config(args)
    assert config.listen == "127.0.0.1:9999"
    assert config.greylisting.delay_seconds == 60
    assert config.outbound_limit.default.recipients == 100
    assert config.outbound_limit.default.window_seconds == 600
    assert config.outbound_limit.on_store_failure == "allow"
    assert [str(n) for n in config.trusted_networks] == ["10.0.0.0/8"]


def test_bad_flags_are_reported_by_field():
    args = build_parser().parse_args(["policyd", "--outbound-limit", "lots/300"])
    with pytest.raises(SettingsError, match=r"outbound_limit\.default\.recipients"):
        build_config(args)


def test_policies_come_from_a_stack_file():
    args = build_parser().parse_args(["policyd", "--stack", "stacks/Pulumi.production.yaml"])
    config = build_config(args)
    settings = load_stack_file("stacks/Pulumi.production.yaml")
    assert config.outbound_limit == settings.mail.outbound_limit
    assert config.greylisting == settings.mail.greylisting
    assert settings.network.ip_range in config.trusted_networks


def test_resp_encoding():
    assert encode_command(["SET", "k", 5]) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n5\r\n"
    assert encode_command(["SET", "ä"]) == "*2\r\n$3\r\nSET\r\n$2\r\nä\r\n".encode()


resp_values = st.recursive(
    st.one_of(st.integers(-(2**62), 2**62), st.binary(max_size=30), st.none()),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=20,
)


def encode_reply(value) -> bytes:
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    return b"*%d\r\n" % len(value) + b"".join(encode_reply(v) for v in value)


@given(resp_values, st.data())
def test_replies_parse_whole_and_only_whole(value, data):
    encoded = encode_reply(value)
    assert parse_reply(encoded, 0) == (value, len(encoded))
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(IncompleteReply):
        parse_reply(encoded[:cut], 0)


def test_error_and_status_replies():
    error, _ = parse_reply(b"-NOSCRIPT No matching script\r\n", 0)
    assert isinstance(error, ReplyError)
    assert str(error).startswith("NOSCRIPT")
    assert parse_reply(b"+OK\r\n", 0) == (b"OK", 5)
