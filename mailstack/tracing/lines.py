"""One log line of a mail service, as message tracing keeps it: who logged it, and the fields a
search and a message's chain of hops are built from (docs/tracing.md).

The lines come from Postfix (every program, postscreen included), rspamd's task log, Dovecot's
LMTP and Sieve deliveries and the policy service; `parse` keeps those that tell something about
a message or a connection and drops the rest (logins, statistics, start-up). Formats:
Postfix's `<queue id>: key=value, ...` (postconf(5), "enable_long_queue_ids"), rspamd's default
task log format (rspamd's `logging.inc`), Dovecot's `lmtp(user)<pid><session>: msgid=<...>:`
prefix (Dovecot 2.4's mail_log plugin and lmtp), the policy service's `key=value` lines
(mailstack.policyd.policy).
"""

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

FIELD_LIMIT = 320
"""Characters kept of an address, a Message-ID or a client address (an address is at most 320
octets; anything longer is a hostile client's and is cut, not refused)."""
TEXT_LIMIT = 2000
"""Characters kept of a line's text."""

# Postfix's short ids are upper-case hex; its long ids (enable_long_queue_ids) use digits and
# consonants only, so no English word at a line's start ("warning", "NOQUEUE") looks like one.
_QUEUE_ID = r"[0-9A-F]{6,}|[0-9BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz]{10,}"
_POSTFIX_QUEUED = re.compile(rf"^(?P<qid>{_QUEUE_ID}): (?P<rest>.*)$", re.S)
_NOQUEUE = re.compile(r"^NOQUEUE: (?P<rest>.*)$", re.S)
_CLIENT = re.compile(r"\[(?P<ip>[0-9A-Fa-f:.]+)\](?::\d+)?")
_ADDRESS_FIELD = r"<(?P<{name}>[^<>]*)>"
_FROM = re.compile(r"\bfrom=" + _ADDRESS_FIELD.format(name="v"))
_TO = re.compile(r"\bto=" + _ADDRESS_FIELD.format(name="v"))
_MESSAGE_ID = re.compile(r"\bmessage-id=(?:<(?P<bracketed>[^<>]*)>|(?P<bare>\S+))")
_STATUS = re.compile(r"\bstatus=(?P<v>[a-z-]+)")
_DSN = re.compile(r"\bdsn=(?P<v>[245]\.\d{1,3}\.\d{1,3})")
_REJECT = re.compile(
    r"^(?P<kind>(?:milter-)?(?:reject|hold|discard)|reject_warning): .*?: "
    r"(?P<code>[245]\d\d )?(?P<dsn>[245]\.\d{1,3}\.\d{1,3})"
)
_NEXT_QUEUE_ID = re.compile(
    rf"(?:queued as (?P<queued>{_QUEUE_ID})\b|notification: (?P<notice>{_QUEUE_ID})$)"
)
_POSTSCREEN_VERDICT = re.compile(
    r"^(?P<verdict>CONNECT|PASS NEW|PASS OLD|DNSBL rank \d+|PREGREET|HANGUP|COMMAND PIPELINING"
    r"|NON-SMTP COMMAND|BARE NEWLINE|WHITELISTED|ALLOWLISTED|DENYLISTED|BLACKLISTED"
    r"|COMMAND TIME LIMIT|COMMAND COUNT LIMIT|COMMAND LENGTH LIMIT|DISCONNECT)\b"
)
_SMTPD_CONNECTION = re.compile(r"^(?:connect|disconnect|lost connection after \S+) from ")

_RSPAMD_TASK = re.compile(r"\brspamd_task_write_log: (?P<rest>.*)$", re.S)
_RSPAMD_FIELD = {
    "message_id": re.compile(r"\bid: <(?P<v>[^<>]*)>"),
    "queue_id": re.compile(r"\bqid: <(?P<v>[^<>]*)>"),
    "client": re.compile(r"\bip: (?P<v>[0-9A-Fa-f:.]+)"),
    "sender": re.compile(r"\bfrom: <(?P<v>[^<>]*)>"),
    "recipients": re.compile(r"\brcpts: <(?P<v>[^<>]*)>"),
}
_RSPAMD_VERDICT = re.compile(
    r"\(\w+: [TFS] \((?P<action>[a-z ]+)\): \[(?P<score>-?\d+(?:\.\d+)?)/(?P<required>-?\d+(?:\.\d+)?)\]"
)

_DOVECOT_LMTP = re.compile(
    r"^lmtp\((?P<user>[^)]*)\)(?:<[^>]*>)*: (?:sieve: )?msgid=(?P<msgid>.*?): (?P<rest>.*)$", re.S
)
_LEVEL = re.compile(r"^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
_POLICYD_KEYS = re.compile(r"\b(?P<k>client|sender|recipient|user|queue_id)=(?P<v>\S*)")


@dataclass(frozen=True)
class TraceLine:
    """A log line and what tracing needs of it. Addresses are as the line gives them; domains
    lower-case in IDNA (xn--) form, as the account data keeps them."""

    logged_at: datetime
    host: str
    program: str
    """The syslog identifier: 'postfix/smtpd', 'postfix/lmtp', 'rspamd', 'dovecot', ..."""
    pid: int | None
    text: str
    queue_id: str = ""
    next_queue_id: str = ""
    """The queue id this line hands the message on to: a relay's 'queued as', a bounce's."""
    message_id: str = ""
    client_address: str = ""
    sender: str = ""
    recipient: str = ""
    status: str = ""
    """sent, deferred, bounced, expired, reject, hold, discard, delivered, failed, greylisted,
    limited, connect, or a postscreen verdict ('PASS NEW'), or an rspamd action ('no action')."""
    dsn: str = ""
    score: float | None = None

    @property
    def sender_domain(self) -> str:
        return domain_of(self.sender)

    @property
    def recipient_domain(self) -> str:
        return domain_of(self.recipient)

    @property
    def fingerprint(self) -> uuid.UUID:
        """Identifies the line, so a line handed over twice (a retry) is kept once: the first
        128 bits of SHA-256 over time, host, program, pid and text (a UUID: 16 bytes stored)."""
        key = f"{self.logged_at.isoformat()}\0{self.host}\0{self.program}\0{self.pid}\0{self.text}"
        return uuid.UUID(bytes=hashlib.sha256(key.encode("utf-8", "replace")).digest()[:16])


def domain_of(address: str) -> str:
    """The address's domain, lower-case, in IDNA form ('' for none or one that cannot be)."""
    _, at, domain = address.rpartition("@")
    if not at or not domain:
        return ""
    try:
        return domain.strip().rstrip(".").lower().encode("idna").decode("ascii")[:253]
    except UnicodeError:
        return ""


_TAG = re.compile(r"^(?P<program>[^\[:\s]+)(?:\[(?P<pid>\d+)\])?:?$")


def parse(logged_at: datetime, host: str, tag: str, text: str) -> TraceLine | None:
    """The TraceLine of a syslog line (its tag 'postfix/smtpd[123]:' and message text), or None
    when the line tells nothing about a message or a connection."""
    match = _TAG.match(tag.strip())
    if not match:
        return None
    program = match["program"]
    pid = int(match["pid"]) if match["pid"] else None
    text = text.strip()
    base = {"logged_at": logged_at, "host": host[:253], "program": program[:64], "pid": pid}
    if program.startswith("postfix"):
        fields = _postfix(program, text)
    elif program == "rspamd":
        fields = _rspamd(text)
    elif program == "dovecot":
        fields = _dovecot(text)
    elif program == "mailstack-policyd":
        fields = _policyd(text)
    else:
        return None
    if fields is None:
        return None
    fields = {
        key: value[:FIELD_LIMIT] if isinstance(value, str) else value
        for key, value in fields.items()
    }
    return TraceLine(text=text[:TEXT_LIMIT], **base, **fields)


def _first(pattern: re.Pattern, text: str) -> str:
    match = pattern.search(text)
    return match["v"] if match else ""


def _client(text: str) -> str:
    match = _CLIENT.search(text)
    return match["ip"] if match else ""


def _postfix(program: str, text: str) -> dict | None:
    queued = _POSTFIX_QUEUED.match(text)
    noqueue = _NOQUEUE.match(text)
    if queued:
        rest = queued["rest"]
        fields: dict = {"queue_id": queued["qid"]}
    elif noqueue:
        rest = noqueue["rest"]
        fields = {}
    elif program == "postfix/postscreen":
        verdict = _POSTSCREEN_VERDICT.match(text)
        if not verdict:
            return None
        return {"client_address": _client(text), "status": verdict["verdict"]}
    elif _SMTPD_CONNECTION.match(text):
        return {"client_address": _client(text), "status": "connect"}
    else:
        return None
    if rest.startswith("client="):
        fields["client_address"] = _client(rest)
    message_id = _MESSAGE_ID.search(rest)
    if message_id and rest.startswith("message-id="):
        fields["message_id"] = message_id["bracketed"] or message_id["bare"] or ""
    fields["sender"] = _first(_FROM, rest)
    fields["recipient"] = _first(_TO, rest)
    reject = _REJECT.match(rest)
    if reject:
        fields["status"] = reject["kind"].removeprefix("milter-")
        fields["dsn"] = reject["dsn"]
        fields["client_address"] = _client(rest.split(": ", 2)[1] if ": " in rest else rest)
    else:
        fields["status"] = _first(_STATUS, rest)
        fields["dsn"] = _first(_DSN, rest)
    following = _NEXT_QUEUE_ID.search(rest)
    if following:
        fields["next_queue_id"] = following["queued"] or following["notice"]
    return fields


def _rspamd(text: str) -> dict | None:
    task = _RSPAMD_TASK.search(text)
    if not task:
        return None
    rest = task["rest"]
    found = {name: _first(pattern, rest) for name, pattern in _RSPAMD_FIELD.items()}
    verdict = _RSPAMD_VERDICT.search(rest)
    recipients = [r.strip() for r in found["recipients"].split(",") if r.strip()]
    return {
        "queue_id": found["queue_id"],
        "message_id": found["message_id"],
        "client_address": found["client"],
        "sender": found["sender"],
        # Every recipient is in the text; the first is searched by.
        "recipient": recipients[0] if recipients else "",
        "status": verdict["action"] if verdict else "",
        "score": float(verdict["score"]) if verdict else None,
    }


def _dovecot(text: str) -> dict | None:
    delivery = _DOVECOT_LMTP.match(text)
    if not delivery:
        return None
    rest = delivery["rest"]
    if "saved mail to" in rest or "stored mail into" in rest:
        status = "delivered"
    elif "failed" in rest or "rejected" in rest or "error" in rest.lower():
        status = "failed"
    else:
        status = ""
    message_id = delivery["msgid"].strip()
    if message_id.startswith("<") and message_id.endswith(">"):
        message_id = message_id[1:-1]
    return {"recipient": delivery["user"], "message_id": message_id, "status": status}


def _policyd(text: str) -> dict | None:
    # The service prefixes its level (mailstack.policyd.cli's log format).
    text = _LEVEL.sub("", text, count=1)
    if text.startswith("greylist: "):
        verdict = text.split()[1]
        status = "greylisted" if verdict in ("new", "early") else f"greylist {verdict}"
    elif text.startswith("outbound limit: refused"):
        status = "limited"
    elif text.startswith("sending hold: "):
        status = "hold"
    else:
        return None
    values = {m["k"]: m["v"] for m in _POLICYD_KEYS.finditer(text)}
    return {
        "client_address": values.get("client", ""),
        "sender": values.get("sender") or values.get("user", ""),
        "recipient": values.get("recipient", ""),
        "queue_id": values.get("queue_id", ""),
        "status": status,
    }
