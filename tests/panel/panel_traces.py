"""Trace lines as the mx and mailstore nodes hand them to the ingester, for the tracing tests
and the tracing benchmark."""

import json
from datetime import datetime, timedelta

from panel_postgres import DATABASE, TRACE_PASSWORD, TRACE_ROLE


def record(at: datetime, host: str, tag: str, message: str) -> str:
    """One line as the rsyslog template in templates/tracing/ hands it over."""
    return json.dumps({"time": at.isoformat(), "host": host, "tag": tag, "message": message})


def inbound_chain(
    start: datetime,
    sender: str,
    recipient: str,
    qid: str,
    msgid: str,
    client: str = "192.0.2.7",
    port: int = 40112,
):
    """The hops of one message from the internet to a mailbox: mx and mailstore lines."""
    steps = [
        ("lab-mx1", "postfix/postscreen[11]:", f"CONNECT from [{client}]:{port} to [10.0.0.11]:25"),
        ("lab-mx1", "postfix/postscreen[11]:", f"PASS NEW [{client}]:{port}"),
        ("lab-mx1", "postfix/smtpd[12]:", f"connect from mail.example.net[{client}]"),
        ("lab-mx1", "mailstack-policyd[13]:",
         f"INFO greylist: passed client={client} network=192.0.2.0/24 sender={sender} "
         f"recipient={recipient} passes=1"),
        ("lab-mx1", "postfix/smtpd[12]:", f"{qid}: client=mail.example.net[{client}]"),
        ("lab-mx1", "postfix/cleanup[14]:", f"{qid}: message-id=<{msgid}>"),
        ("lab-mx1", "rspamd[15]:",
         f"<ab12>; task; rspamd_task_write_log: id: <{msgid}>, qid: <{qid}>, ip: {client}, "
         f"from: <{sender}>, (default: F (no action): [0.40/15.00] [ARC_NA(0.00){{}}]), len: 900,"
         f" time: 30.0ms, dns req: 2, digest: <00>, rcpts: <{recipient}>, mime_rcpts: <>"),
        ("lab-mx1", "postfix/qmgr[16]:", f"{qid}: from=<{sender}>, size=900, nrcpt=1 (queue active)"),
        ("lab-mailstore1", "dovecot[21]:",
         f"lmtp({recipient})<31><kJ2x>: msgid=<{msgid}>: saved mail to INBOX"),
        ("lab-mx1", "postfix/lmtp[17]:",
         f"{qid}: to=<{recipient}>, relay=mailstore[10.0.0.21]:24, delay=0.2, dsn=2.0.0, "
         f"status=sent (250 2.0.0 <{recipient}> kJ2x Saved)"),
        ("lab-mx1", "postfix/qmgr[16]:", f"{qid}: removed"),
    ]  # fmt: skip
    return [
        record(start + timedelta(milliseconds=10 * i), host, tag, text)
        for i, (host, tag, text) in enumerate(steps)
    ]


def trace_dsn(postgres, dbname: str = DATABASE) -> str:
    """How the ingesters connect: the trace role over TCP with its password."""
    return (
        f"host=127.0.0.1 port={postgres.port} dbname={dbname} user={TRACE_ROLE} "
        f"password={TRACE_PASSWORD} connect_timeout=2"
    )
