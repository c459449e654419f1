"""A policy protocol client for tests: asks a policy service what Postfix would ask."""

import asyncio

DEFAULTS = {
    "request": "smtpd_access_policy",
    "protocol_state": "RCPT",
    "protocol_name": "ESMTP",
    "client_address": "198.51.100.20",
    "client_name": "unknown",
    "helo_name": "mail.example.org",
    "sender": "alice@example.org",
    "recipient": "bob@example.net",
    "recipient_count": "0",
    "instance": "1.1.1.1",
    "sasl_username": "",
}


def request_bytes(**attributes: str) -> bytes:
    merged = {**DEFAULTS, **attributes}
    return ("".join(f"{k}={v}\n" for k, v in merged.items()) + "\n").encode()


class PolicyClient:
    """One connection to a policy service, as one smtpd process keeps it."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> "PolicyClient":
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *_exc) -> None:
        self.writer.close()

    async def ask(self, **attributes: str) -> str:
        """The action for one request (without the 'action=' prefix)."""
        self.writer.write(request_bytes(**attributes))
        reply = await asyncio.wait_for(self.reader.readuntil(b"\n\n"), 30)
        text = reply.decode()
        assert text.startswith("action="), text
        return text[len("action=") : -2]
