"""A closed-loop load generator for Postfix policy servers: N connections, one request in
flight on each, as Postfix's smtpd processes use a policy service.

The same generator drives every server compared, in one process, so its own cost is the same
for all of them.
"""

import random
import selectors
import socket
import time
from dataclasses import dataclass

REQUEST = (
    "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
    "client_address={client}\nclient_name=unknown\nreverse_client_name=unknown\n"
    "helo_name=mail.example.org\nsender={sender}\nrecipient={recipient}\n"
    "recipient_count=0\nqueue_id=\ninstance={instance}\nsize=0\netrn_domain=\nstress=\n"
    "sasl_method=\nsasl_username=\nsasl_sender=\nccert_subject=\nccert_issuer=\n"
    "ccert_fingerprint=\nencryption_protocol=\nencryption_cipher=\nencryption_keysize=0\n\n"
)


class Workload:
    """Greylisting requests: all new triplets, or a mix where `repeat_share` repeat earlier ones."""

    def __init__(self, name: str, repeat_share: float, seed: int = 1, run_tag: str = ""):
        self.name = name
        self.repeat_share = repeat_share
        self.random = random.Random(seed)
        self.counter = 0
        self.seen: list[bytes] = []
        self.run_tag = run_tag or f"{time.time_ns():x}"

    def next(self) -> bytes:
        if self.seen and self.random.random() < self.repeat_share:
            return self.random.choice(self.seen)
        self.counter += 1
        n = self.counter
        request = REQUEST.format(
            client=f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}",
            sender=f"sender{n}-{self.run_tag}@example.org",
            recipient=f"user{n % 1000}@example.net",
            instance=f"{n:x}.{self.run_tag}",
        ).encode()
        if len(self.seen) < 10000:
            self.seen.append(request)
        else:
            self.seen[self.random.randrange(len(self.seen))] = request
        return request


@dataclass
class Result:
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def run(host: str, port: int, connections: int, workload: Workload, duration: float) -> Result:
    """Keep `connections` connections busy for `duration` seconds; measure every answer."""
    selector = selectors.DefaultSelector()
    sockets = []
    for _ in range(connections):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        sockets.append(sock)
    latencies: list[float] = []
    errors = 0
    buffers: dict[socket.socket, bytes] = {}
    sent_at: dict[socket.socket, float] = {}
    started = time.perf_counter()
    deadline = started + duration
    for sock in sockets:
        buffers[sock] = b""
        sent_at[sock] = time.perf_counter()
        sock.sendall(workload.next())
        selector.register(sock, selectors.EVENT_READ)
    in_flight = connections
    try:
        while in_flight:
            for key, _ in selector.select(timeout=5):
                sock = key.fileobj
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("server closed a connection")
                buffer = buffers[sock] + data
                if not buffer.endswith(b"\n\n"):
                    buffers[sock] = buffer
                    continue
                now = time.perf_counter()
                latencies.append(now - sent_at[sock])
                if not buffer.startswith(b"action="):
                    errors += 1
                buffers[sock] = b""
                if now < deadline:
                    sent_at[sock] = now
                    sock.sendall(workload.next())
                else:
                    selector.unregister(sock)
                    in_flight -= 1
    finally:
        for sock in sockets:
            sock.close()
        selector.close()
    return Result(len(latencies), time.perf_counter() - started, latencies, errors)
