"""Parsing the mail services' log lines for message tracing (mailstack.tracing.lines): each hop
of a message gives the fields its chain and a search are built from; lines of no interest, and
hostile or malformed ones, give nothing or a cut value, never an exception."""

from datetime import UTC, datetime

import pytest

from mailstack.tracing.lines import FIELD_LIMIT, domain_of, parse

AT = datetime(2026, 12, 2, 9, 0, 0, 123456, tzinfo=UTC)
QID = "4fM2Qx1Hkbz5vBc"
NEXT = "4fM2Qy3Lmnz6wCd"


def line(tag: str, text: str):
    return parse(AT, "lab-mx1", tag, text)


@pytest.mark.parametrize(
    ("tag", "text", "expected"),
    [
        ("postfix/postscreen[101]:", "CONNECT from [2001:db8::7]:40112 to [10.0.0.11]:25",
         {"client_address": "2001:db8::7", "status": "CONNECT", "queue_id": ""}),
        ("postfix/postscreen[101]:", "PASS NEW [192.0.2.7]:40112",
         {"client_address": "192.0.2.7", "status": "PASS NEW"}),
        ("postfix/postscreen[101]:", "DNSBL rank 3 for [192.0.2.9]:5512",
         {"client_address": "192.0.2.9", "status": "DNSBL rank 3"}),
        ("postfix/smtpd[202]:", "connect from mail.example.net[192.0.2.7]",
         {"client_address": "192.0.2.7", "status": "connect"}),
        ("postfix/smtpd[202]:", f"{QID}: client=mail.example.net[192.0.2.7]",
         {"queue_id": QID, "client_address": "192.0.2.7"}),
        ("postfix/submission/smtpd[203]:",
         f"{QID}: client=unknown[10.0.0.40], sasl_method=PLAIN, sasl_username=alice@example.org",
         {"queue_id": QID, "client_address": "10.0.0.40"}),
        ("postfix/cleanup[204]:", f"{QID}: message-id=<a1.b2@example.net>",
         {"queue_id": QID, "message_id": "a1.b2@example.net"}),
        ("postfix/cleanup[204]:", f"{QID}: message-id=no-brackets@example.net",
         {"message_id": "no-brackets@example.net"}),
        ("postfix/qmgr[205]:", f"{QID}: from=<Bob@Example.NET>, size=1234, nrcpt=1 (queue active)",
         {"queue_id": QID, "sender": "Bob@Example.NET", "sender_domain": "example.net"}),
        ("postfix/lmtp[206]:",
         f"{QID}: to=<alice@example.org>, orig_to=<info@example.org>, relay=mailstore[10.0.0.21]"
         ":24, delay=0.2, delays=0.1/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 <alice@example.org>"
         " kJ2xAbC Saved)",
         {"recipient": "alice@example.org", "recipient_domain": "example.org", "status": "sent",
          "dsn": "2.0.0"}),
        ("postfix/smtp[207]:",
         f"{QID}: to=<carol@example.com>, relay=mx.example.com[198.51.100.2]:25, delay=1.1, "
         f"dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as {NEXT})",
         {"status": "sent", "next_queue_id": NEXT}),
        ("postfix/smtp[207]:",
         f"{QID}: to=<carol@example.com>, relay=none, delay=30, dsn=4.4.1, status=deferred "
         "(connect to mx.example.com[198.51.100.2]:25: Connection refused)",
         {"status": "deferred", "dsn": "4.4.1"}),
        ("postfix/bounce[208]:", f"{QID}: sender non-delivery notification: {NEXT}",
         {"queue_id": QID, "next_queue_id": NEXT}),
        ("postfix/smtpd[202]:",
         "NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 450 4.7.1 <alice@example.org>: "
         "Recipient address rejected: Greylisted, retry in 300 s; from=<bob@example.net> "
         "to=<alice@example.org> proto=ESMTP helo=<mail.example.net>",
         {"queue_id": "", "status": "reject", "dsn": "4.7.1", "client_address": "192.0.2.7",
          "sender": "bob@example.net", "recipient": "alice@example.org"}),
        ("postfix/cleanup[204]:",
         f"{QID}: milter-reject: END-OF-MESSAGE from unknown[192.0.2.7]: 5.7.1 Spam message "
         "rejected; from=<bob@example.net> to=<alice@example.org> proto=ESMTP helo=<x>",
         {"queue_id": QID, "status": "reject", "dsn": "5.7.1", "client_address": "192.0.2.7"}),
        ("postfix/qmgr[205]:", f"{QID}: removed", {"queue_id": QID, "status": ""}),
        ("rspamd[301]:",
         "<c0ffee>; task; rspamd_task_write_log: id: <a1.b2@example.net>, qid: <" + QID + ">, "
         "ip: 192.0.2.7, from: <bob@example.net>, (default: F (no action): [1.30/15.00] "
         "[R_SPF_ALLOW(-0.20){+ip4:192.0.2.0/24;}]), len: 912, time: 40.2ms, dns req: 4, "
         "digest: <0123>, rcpts: <alice@example.org,dave@example.com>, mime_rcpts: <alice@example.org>",
         {"queue_id": QID, "message_id": "a1.b2@example.net", "client_address": "192.0.2.7",
          "sender": "bob@example.net", "recipient": "alice@example.org",
          "status": "no action", "score": 1.3}),
        ("dovecot[401]:",
         "lmtp(alice@example.org)<2212><kJ2xAbC>: msgid=<a1.b2@example.net>: saved mail to INBOX",
         {"recipient": "alice@example.org", "message_id": "a1.b2@example.net",
          "status": "delivered"}),
        ("dovecot[401]:",
         "lmtp(alice@example.org)<2212><kJ2xAbC>: sieve: msgid=<a1.b2@example.net>: stored mail "
         "into mailbox 'Junk'",
         {"status": "delivered", "message_id": "a1.b2@example.net"}),
        ("dovecot[401]:",
         "lmtp(alice@example.org)<2212><kJ2xAbC>: msgid=<a1.b2@example.net>: save failed to "
         "INBOX: Quota exceeded (mailbox for user is full)",
         {"status": "failed"}),
        ("mailstack-policyd[501]:",
         "INFO greylist: new client=192.0.2.7 network=192.0.2.0/24 sender=bob@example.net "
         "recipient=alice@example.org retry_in=300s",
         {"status": "greylisted", "client_address": "192.0.2.7", "sender": "bob@example.net",
          "recipient": "alice@example.org"}),
        ("mailstack-policyd[501]:",
         "INFO outbound limit: refused user=alice@example.org class=default recipient=x@example.com "
         "used=100 limit=100 window=3600s retry_in=20s",
         {"status": "limited", "sender": "alice@example.org", "recipient": "x@example.com"}),
        ("mailstack-policyd[501]:",
         "WARNING sending hold: HOLD user=alice@example.org reason=scan count=3 threshold=3; "
         "submission refused until an admin releases it",
         {"status": "hold", "sender": "alice@example.org"}),
        # As Postfix logs with short queue ids (enable_long_queue_ids = no), seen in the lab.
        ("postfix/lmtp[10422]:",
         "0828620006: to=<u0f7a658934@mailstack.test>, relay=mailstore.private[10.77.0.30]:24, "
         "delay=0.29, delays=0.08/0.03/0.04/0.14, dsn=2.0.0, status=sent (250 2.0.0 "
         "<u0f7a658934@mailstack.test> Z33dCW7YD2uNJAAAFMPPdw Saved)",
         {"queue_id": "0828620006", "status": "sent", "recipient": "u0f7a658934@mailstack.test"}),
    ],
)  # fmt: skip
def test_each_hop_gives_its_fields(tag, text, expected):
    parsed = line(tag, text)
    assert parsed is not None
    assert parsed.text == text
    assert parsed.logged_at == AT and parsed.host == "lab-mx1"
    assert parsed.pid == int(tag.split("[")[1].split("]")[0])
    for name, value in expected.items():
        assert getattr(parsed, name) == value, name


@pytest.mark.parametrize(
    ("tag", "text"),
    [
        ("postfix/smtpd[202]:", "warning: hostname unknown does not resolve to address 192.0.2.7"),
        ("postfix/anvil[209]:", "statistics: max connection rate 1/60s for (smtp:192.0.2.7)"),
        ("postfix/master[1]:", "daemon started -- version 3.10.1, configuration /etc/postfix"),
        ("postfix/postscreen[101]:", "cache btree:/var/lib/postfix/psc_cache full cleanup"),
        ("dovecot[401]:", "imap-login: Login: user=<alice@example.org>, method=PLAIN"),
        ("rspamd[301]:", "<c0ffee>; main; main: rspamd 3.12.1 is loading configuration"),
        ("mailstack-policyd[501]:", "INFO policyd: listening on 127.0.0.1:10040"),
        ("postfix/lmtp[10422]:",
         "connect to mailstore.private[10.77.0.31]:24: Connection refused"),
        ("dovecot[8929]:", "lmtp(9357): Connect from 10.77.0.10"),
        ("sshd[601]:", "Accepted publickey for root from 10.0.0.1"),
        ("not a tag at all", "anything"),
    ],
)  # fmt: skip
def test_lines_of_no_interest_give_nothing(tag, text):
    assert line(tag, text) is None


def test_a_hostile_clients_long_values_are_cut_not_refused():
    sender = "x" * 5000 + "@example.net"
    parsed = line("postfix/qmgr[205]:", f"{QID}: from=<{sender}>, size=1, nrcpt=1 (queue active)")
    assert len(parsed.sender) == FIELD_LIMIT
    assert len(parsed.text) <= 2000


def test_utf8_and_idn_addresses_keep_their_form_and_search_by_ascii_domain():
    parsed = line(
        "postfix/qmgr[205]:", f"{QID}: from=<jürgen@bücher.example>, size=1, nrcpt=1 (queue active)"
    )
    assert parsed.sender == "jürgen@bücher.example"
    assert parsed.sender_domain == "xn--bcher-kva.example"
    assert domain_of("nobody") == "" and domain_of("") == ""


def test_a_score_that_is_no_number_is_no_score_and_no_error():
    parsed = line(
        "rspamd[301]:",
        "<c0ffee>; task; rspamd_task_write_log: id: <a@b>, qid: <" + QID + ">, "
        "(default: F (no action): [1.2.3/15.00] []), len: 9",
    )
    assert parsed.queue_id == QID and parsed.score is None


def test_the_null_sender_has_no_domain():
    parsed = line("postfix/qmgr[205]:", f"{QID}: from=<>, size=1, nrcpt=1 (queue active)")
    assert parsed.sender == "" and parsed.sender_domain == ""


def test_the_same_line_twice_has_the_same_fingerprint_and_another_line_another():
    text = f"{QID}: removed"
    first, again = line("postfix/qmgr[205]:", text), line("postfix/qmgr[205]:", text)
    other = parse(AT, "lab-mx2", "postfix/qmgr[205]:", text)
    assert first.fingerprint == again.fingerprint != other.fingerprint
