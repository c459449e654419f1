"""The policy protocol parser and framer: what Postfix sends parses; anything else is refused
with ProtocolError, never another exception."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailstack.policyd.protocol import (
    Limits,
    ProtocolError,
    RequestFramer,
    answer,
    parse_request,
)

LIMITS = Limits(max_line_bytes=512, max_attributes=40)

POSTFIX_REQUEST = (
    b"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
    b"client_address=192.0.2.10\nclient_name=mail.example.org\n"
    b"reverse_client_name=mail.example.org\nhelo_name=mail.example.org\n"
    b"sender=alice@example.org\nrecipient=bob@example.net\nrecipient_count=0\n"
    b"queue_id=\ninstance=3f2a.5c1e9d7a.8b1f1.0\nsize=0\netrn_domain=\nstress=\n"
    b"sasl_method=\nsasl_username=\nsasl_sender=\nccert_subject=\nccert_issuer=\n"
    b"ccert_fingerprint=\nencryption_protocol=TLSv1.3\nencryption_cipher=TLS_AES_256_GCM_SHA384\n"
    b"encryption_keysize=256\npolicy_context=\nserver_address=10.20.1.11\nserver_port=25\n"
    b"compatibility_level=3.6\nmail_version=3.10.1\n\n"
)


def test_a_postfix_request_parses_into_its_attributes():
    attributes = parse_request(POSTFIX_REQUEST, Limits())
    assert attributes["request"] == "smtpd_access_policy"
    assert attributes["client_address"] == "192.0.2.10"
    assert attributes["recipient"] == "bob@example.net"
    assert attributes["queue_id"] == ""
    assert attributes["encryption_cipher"] == "TLS_AES_256_GCM_SHA384"
    assert len(attributes) == 29


def test_a_value_may_contain_equals_signs_and_utf8():
    block = "request=smtpd_access_policy\nsender=a=b@exämple.org\n\n".encode()
    assert parse_request(block, LIMITS)["sender"] == "a=b@exämple.org"


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        (b"request=smtpd_access_policy\n", "not ended by a blank line"),
        (b"\n\n", "empty request"),
        (b"request=smtpd_access_policy\njunk\n\n", "without '='"),
        (b"request=smtpd_access_policy\nBad-Name=x\n\n", "attribute name"),
        (b"request=smtpd_access_policy\nsender=a\x00b\n\n", "control character"),
        (b"request=smtpd_access_policy\nsender=\xff\xfe\n\n", "not UTF-8"),
        (b"request=other\n\n", "not an smtpd_access_policy request"),
        (b"sender=a@b\n\n", "not an smtpd_access_policy request"),
        (b"request=smtpd_access_policy\nsender=" + b"a" * 600 + b"\n\n", "longer than 512"),
        (b"request=smtpd_access_policy\n" + b"x=1\n" * 40 + b"\n", "more than 40 attributes"),
    ],
)
def test_malformed_requests_are_refused_with_the_reason(block, reason):
    with pytest.raises(ProtocolError, match=reason):
        parse_request(block, LIMITS)


def test_answers_end_with_a_blank_line():
    assert answer("DUNNO") == b"action=DUNNO\n\n"


def test_framer_cuts_requests_and_keeps_the_rest():
    framer = RequestFramer(LIMITS)
    assert framer.feed(b"request=smtpd_access_policy\na=1\n\nrequest=smtpd_acc") == [
        b"request=smtpd_access_policy\na=1\n\n"
    ]
    assert framer.pending
    assert framer.feed(b"ess_policy\n\n") == [b"request=smtpd_access_policy\n\n"]
    assert not framer.pending


def test_framer_refuses_a_request_without_end_beyond_the_size_limit():
    framer = RequestFramer(LIMITS)
    framer.feed(b"request=smtpd_access_policy\n")
    with pytest.raises(ProtocolError, match="larger than") as raised:
        for _ in range(LIMITS.max_request_bytes // 100 + 1):
            framer.feed(b"x" * 100)
    assert raised.value.kind == "too-large"


def test_framer_refuses_an_empty_request():
    with pytest.raises(ProtocolError, match="empty request"):
        RequestFramer(LIMITS).feed(b"request=smtpd_access_policy\n\n\n")


# Property-based tests ---------------------------------------------------------------------

names = st.from_regex(r"[a-z0-9_]{1,20}", fullmatch=True).filter(lambda n: n != "request")
values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00"),
    max_size=60,
).filter(lambda v: not any(ord(c) < 32 or ord(c) == 127 for c in v))
attribute_sets = st.dictionaries(names, values, max_size=30)


def encode(attributes: dict[str, str]) -> bytes:
    lines = ["request=smtpd_access_policy", *(f"{k}={v}" for k, v in attributes.items())]
    return ("\n".join(lines) + "\n\n").encode()


@given(attribute_sets)
def test_any_wellformed_request_parses_back_to_its_attributes(attributes):
    block = encode(attributes)
    limits = Limits(max_line_bytes=1024, max_attributes=64)
    assert parse_request(block, limits) == {"request": "smtpd_access_policy", **attributes}


@given(st.binary(max_size=2000))
@settings(max_examples=500)
def test_arbitrary_bytes_parse_or_raise_protocol_error(junk):
    try:
        attributes = parse_request(junk, LIMITS)
    except ProtocolError:
        return
    assert attributes["request"] == "smtpd_access_policy"


@given(st.lists(attribute_sets, min_size=1, max_size=5), st.data())
def test_framing_does_not_depend_on_how_the_stream_is_cut(requests, data):
    stream = b"".join(encode(a) for a in requests)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=20)))
    framer = RequestFramer(Limits(max_line_bytes=1024, max_attributes=64))
    found = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        found += framer.feed(stream[start:end])
    assert found == [encode(a) for a in requests]
    assert not framer.pending


@given(st.lists(st.binary(max_size=300), max_size=20))
@settings(max_examples=300)
def test_framer_on_arbitrary_chunks_yields_requests_or_raises_protocol_error(chunks):
    limits = Limits(max_line_bytes=256, max_attributes=20)
    framer = RequestFramer(limits)
    try:
        for chunk in chunks:
            for block in framer.feed(chunk):
                assert block.endswith(b"\n\n")
                assert len(block) <= limits.max_request_bytes + len(chunk)
            # What is kept between chunks is bounded.
            assert len(framer.buffer) <= limits.max_request_bytes
    except ProtocolError:
        pass


def reference_parse(block: bytes, limits: Limits) -> dict[str, str] | None:
    """The protocol's rules applied line by line, plainly: None where a request is refused."""
    if not block.endswith(b"\n\n"):
        return None
    lines = block[:-2].split(b"\n")
    if len(lines) > limits.max_attributes:
        return None
    attributes = {}
    for raw in lines:
        if len(raw) > limits.max_line_bytes:
            return None
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        name, sep, value = line.partition("=")
        if not sep or not (1 <= len(name) <= 64) or not all(c in NAME_CHARS for c in name):
            return None
        if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
            return None
        attributes[name] = value
    if attributes.get("request") != "smtpd_access_policy":
        return None
    return attributes


NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")
near_requests = st.lists(
    st.one_of(
        st.builds(lambda a: encode(a)[:-1], attribute_sets),
        st.sampled_from(
            [b"=", b"\n", b"\t", b"\x00", b"\x7f", b"\xc3\xa4", b"\xff", b"A", b"x" * 70]
        ),
        st.binary(max_size=10),
    ),
    max_size=6,
).map(lambda parts: b"".join(parts) + b"\n")


@given(near_requests)
@settings(max_examples=500)
def test_the_fast_parser_agrees_with_the_plain_rules(block):
    limits = Limits(max_line_bytes=256, max_attributes=20)
    expected = reference_parse(block, limits)
    try:
        assert parse_request(block, limits) == expected
    except ProtocolError:
        assert expected is None
