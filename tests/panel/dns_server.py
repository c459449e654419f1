"""A small authoritative DNS server on loopback for the panel's DNS tests, built on dnspython.

It answers UDP and TCP queries from a mutable record table, so tests publish and withdraw
records while the panel resolves them through its real resolver code (no mocked resolver).
Names that have no record of any type get NXDOMAIN; others without the asked type an empty
NOERROR answer. Answers larger than the client's UDP size are truncated (TC), and the resolver
retries over TCP as it would against any server.
"""

import socketserver
import struct
import threading
from collections import defaultdict

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from mailstack.testing.processes import free_port

TTL = 60


class AuthoritativeServer:
    """`records[(name, type)]` = list of values in presentation form (TXT values quoted)."""

    def __init__(self):
        self.records: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.port = free_port()
        self.host = "127.0.0.1"
        self._servers: list[socketserver.BaseServer] = []

    # The table ---------------------------------------------------------------------------

    def publish(self, name: str, rdtype: str, value: str) -> None:
        self.records[(name.lower().rstrip("."), rdtype.upper())].append(value)

    def withdraw(self, name: str, rdtype: str | None = None) -> None:
        for key in list(self.records):
            if key[0] == name.lower().rstrip(".") and rdtype in (None, key[1]):
                del self.records[key]

    def answer(self, wire: bytes, max_size: int) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        values = self.records.get((name, rdtype), [])
        if values:
            response.answer.append(
                dns.rrset.from_text_list(question.name, TTL, dns.rdataclass.IN, rdtype, values)
            )
        elif not any(key[0] == name for key in self.records if self.records[key]):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire(max_size=max_size)

    # Serving -----------------------------------------------------------------------------

    def __enter__(self) -> "AuthoritativeServer":
        server = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                try:
                    query = dns.message.from_wire(data)
                    size = max(512, query.payload if query.edns >= 0 else 512)
                    sock.sendto(server.answer(data, size), self.client_address)
                except dns.exception.TooBig:
                    truncated = dns.message.make_response(dns.message.from_wire(data))
                    truncated.flags |= dns.flags.TC
                    sock.sendto(truncated.to_wire(), self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self):
                header = self.request.recv(2)
                if len(header) < 2:
                    return
                (length,) = struct.unpack("!H", header)
                data = b""
                while len(data) < length:
                    chunk = self.request.recv(length - len(data))
                    if not chunk:
                        return
                    data += chunk
                reply = server.answer(data, 65535)
                self.request.sendall(struct.pack("!H", len(reply)) + reply)

        class ThreadingTcp(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._servers = [
            socketserver.ThreadingUDPServer((self.host, self.port), Udp),
            ThreadingTcp((self.host, self.port), Tcp),
        ]
        for srv in self._servers:
            srv.daemon_threads = True
            threading.Thread(target=srv.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()

    @property
    def resolver_setting(self) -> list[str]:
        """The value of settings.MAILPANEL_DNS_RESOLVERS that points the panel here."""
        return [f"{self.host}:{self.port}"]
