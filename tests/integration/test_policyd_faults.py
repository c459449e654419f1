"""Faults: Valkey killed or frozen mid-run, and clients that send junk or dawdle."""

import asyncio
import logging
import signal
import socket
import subprocess
import sys
import time

import pytest

from mailstack.testing.policy_client import PolicyClient, request_bytes
from mailstack.testing.policyd import client, one_service, policy_services
from mailstack.testing.processes import free_port, start_policyd
from mailstack.testing.valkey import ValkeyServer

pytestmark = pytest.mark.valkey

STORE = {"store_timeout_ms": 300, "store_retry_ms": 200}
# Postfix's smtpd_policy_service_timeout is 100 s; the answer must come long before (the
# store timeout here is 0.3 s; the rest is room for a busy machine).
BOUND = 1.5


async def timed(mx: PolicyClient, **attributes) -> tuple[str, float]:
    started = time.monotonic()
    action = await mx.ask(**attributes)
    return action, time.monotonic() - started


@pytest.mark.parametrize("on_store_failure", ["defer", "allow"])
def test_valkey_killed_mid_run_answers_stay_bounded(own_valkey, key_prefix, on_store_failure):
    async def scenario():
        async with policy_services(
            own_valkey.url,
            key_prefix,
            service=STORE,
            outbound_limit={"on_store_failure": on_store_failure},
        ) as (server,):
            clients = [client(server) for _ in range(6)]
            for c in clients:
                await c.__aenter__()
            stop = asyncio.Event()
            answers: list[tuple[str, str, float]] = []

            async def keep_asking(n: int, mx: PolicyClient):
                i = 0
                while not stop.is_set():
                    i += 1
                    if n % 2:
                        action, took = await timed(mx, sender=f"s{n}-{i}@example.org")
                        answers.append(("greylist", action, took))
                    else:
                        action, took = await timed(
                            mx, sasl_username=f"user{n}", instance=f"{n}.{i}"
                        )
                        answers.append(("outbound", action, took))

            load = [asyncio.ensure_future(keep_asking(n, c)) for n, c in enumerate(clients)]
            await asyncio.sleep(0.5)
            before = len(answers)
            own_valkey.kill()
            await asyncio.sleep(1.5)
            stop.set()
            await asyncio.gather(*load)
            for c in clients:
                await c.__aexit__()
            during = answers[before:]
            assert before > 10 and len(during) > 10
            assert max(took for _, _, took in answers) < BOUND
            greylist = {a for check, a, _ in during[-20:] if check == "greylist"}
            outbound = {a for check, a, _ in during[-20:] if check == "outbound"}
            # Greylisting lets mail through; the outbound limit does what the settings say.
            assert greylist == {"DUNNO"}
            if on_store_failure == "defer":
                assert all(a.startswith("451 4.7.1") and "cannot be checked" in a for a in outbound)
            else:
                assert outbound == {"DUNNO"}
            metrics = server.metrics
            assert metrics.store_errors.get() >= 1
            assert metrics.decisions.get("greylist", "store-failure") >= 1
            assert f"store-failure-{on_store_failure}" in metrics.render()

    asyncio.run(scenario())


def test_a_frozen_valkey_costs_at_most_the_store_timeout_and_recovery_is_automatic(
    own_valkey, key_prefix
):
    async def scenario():
        async with one_service(own_valkey.url, key_prefix, service=STORE) as (server, mx):
            assert (await mx.ask()).startswith("DEFER_IF_PERMIT")
            own_valkey.freeze()
            try:
                action, took = await timed(mx, recipient="x@example.net")
                assert action == "DUNNO"
                assert 0.25 < took < BOUND
                assert server.metrics.store_errors.get() == 1
                # Within store_retry_ms the store is not tried again: no second wait, no error.
                action, took = await timed(mx, recipient="y@example.net")
                assert action == "DUNNO" and took < 0.25
                assert server.metrics.store_errors.get() == 1
            finally:
                own_valkey.thaw()
            await asyncio.sleep(0.3)
            assert (await mx.ask(recipient="z@example.net")).startswith("DEFER_IF_PERMIT")

    asyncio.run(scenario())


def test_a_restarted_valkey_is_used_again(own_valkey, key_prefix):
    async def scenario():
        async with one_service(own_valkey.url, key_prefix, service=STORE) as (_server, mx):
            assert (await mx.ask()).startswith("DEFER_IF_PERMIT")
            own_valkey.kill()
            assert await mx.ask(recipient="x@example.net") == "DUNNO"
            with ValkeyServer(port=own_valkey.port, name=f"valkey-restarted-{own_valkey.port}"):
                await asyncio.sleep(0.3)
                assert (await mx.ask(recipient="y@example.net")).startswith("DEFER_IF_PERMIT")

    asyncio.run(scenario())


def test_an_unreachable_valkey_fails_fast(key_prefix):
    async def scenario():
        nothing = f"redis://127.0.0.1:{free_port()}/0"
        async with one_service(nothing, key_prefix, service=STORE) as (_server, mx):
            action, took = await timed(mx)
            assert action == "DUNNO" and took < BOUND
            action, took = await timed(mx, sasl_username="alice")
            assert action.startswith("451 4.7.1") and took < BOUND

    asyncio.run(scenario())


def test_unreachable_account_data_gives_the_default_limit(valkey, key_prefix):
    async def scenario():
        nowhere = f"host=127.0.0.1 port={free_port()} dbname=mailstack user=mail_lookup"
        async with one_service(
            valkey.url,
            key_prefix,
            accounts_dsn=nowhere,
            service=STORE,
            outbound_limit={"default": {"recipients": 2, "window_seconds": 300}},
        ) as (server, mx):
            answers = [
                await timed(mx, sasl_username="alice", instance="t", recipient=f"r{i}@x.org")
                for i in range(3)
            ]
            assert [a for a, _ in answers][:2] == ["DUNNO", "DUNNO"]
            assert answers[2][0].startswith("451 4.7.1 Recipient limit reached")
            assert max(took for _, took in answers) < BOUND
            assert server.metrics.account_errors.get() >= 1

    asyncio.run(scenario())


JUNK = {
    "binary junk": b"\x00\x01\x02\xff\xfe\xfd" * 50 + b"\n\n",
    "no equals sign": b"request=smtpd_access_policy\nthis is not an attribute\n\n",
    "oversized line": b"request=smtpd_access_policy\nsender=" + b"a" * 10_000 + b"\n\n",
    "thousands of attributes": b"request=smtpd_access_policy\n" + b"a=b\n" * 5000 + b"\n",
    "no blank line, endless": b"request=smtpd_access_policy\n" + b"sender=x\n" * 200_000,
    "HTTP request": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\n\n",
    "empty request": b"\n\n",
}


@pytest.mark.parametrize("junk", list(JUNK.values()), ids=list(JUNK))
def test_malformed_requests_close_that_connection_only(valkey, key_prefix, junk, caplog):
    async def scenario():
        async with (
            policy_services(
                valkey.url,
                key_prefix,
                service={"max_line_bytes": 4096, "max_attributes": 200},
                greylisting={"enabled": False},
            ) as (server,),
            client(server) as bystander,
        ):
            assert await bystander.ask() == "DUNNO"
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                writer.write(junk)
                await writer.drain()
            except ConnectionError:
                pass
            rest = await asyncio.wait_for(_read_to_end(reader), 5)
            assert b"action=" not in rest
            writer.close()
            assert await bystander.ask() == "DUNNO"
            assert sum(server.metrics.protocol_errors.values.values()) == 1

    with caplog.at_level(logging.INFO, logger="mailstack.policyd"):
        asyncio.run(scenario())
    assert any("closing connection" in r.getMessage() for r in caplog.records)


async def _read_to_end(reader: asyncio.StreamReader) -> bytes:
    data = b""
    try:
        while chunk := await reader.read(65536):
            data += chunk
    except ConnectionError:
        pass
    return data


def test_a_slow_client_is_closed_and_others_are_served(valkey, key_prefix, caplog):
    async def scenario():
        async with (
            policy_services(
                valkey.url,
                key_prefix,
                service={"request_timeout_seconds": 0.5},
                greylisting={"enabled": False},
            ) as (server,),
            client(server) as bystander,
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            request = request_bytes()
            started = time.monotonic()
            closed = False
            for i in range(len(request)):
                try:
                    writer.write(request[i : i + 1])
                    await writer.drain()
                except ConnectionError:
                    closed = True
                    break
                if reader.at_eof():
                    closed = True
                    break
                assert await bystander.ask() == "DUNNO"
                await asyncio.sleep(0.05)
            if not closed:
                assert await asyncio.wait_for(reader.read(), 2) == b""
            assert time.monotonic() - started < 2
            assert server.metrics.protocol_errors.get("timeout") == 1
            writer.close()

    with caplog.at_level(logging.INFO, logger="mailstack.policyd"):
        asyncio.run(scenario())
    assert any("not complete within 0.5 s" in r.getMessage() for r in caplog.records)


def test_requests_may_arrive_in_pieces_and_back_to_back(valkey, key_prefix):
    async def scenario():
        async with policy_services(valkey.url, key_prefix, greylisting={"enabled": False}) as (
            server,
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            stream = request_bytes() * 3
            for piece in (stream[:7], stream[7:300], stream[300:]):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.01)
            answers = [await reader.readuntil(b"\n\n") for _ in range(3)]
            assert answers == [b"action=DUNNO\n\n"] * 3
            writer.close()

    asyncio.run(scenario())


def test_metrics_endpoint(valkey, key_prefix):
    async def scenario():
        metrics_port = free_port()
        async with (
            policy_services(valkey.url, key_prefix, metrics_listen=f"127.0.0.1:{metrics_port}") as (
                server,
            ),
            client(server) as mx,
        ):
            await mx.ask()
            await mx.ask(sasl_username="alice")
            reader, writer = await asyncio.open_connection("127.0.0.1", metrics_port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            response = (await reader.read()).decode()
            writer.close()
        assert response.startswith("HTTP/1.1 200 OK")
        assert 'policyd_decisions_total{check="greylist",result="new"} 1' in response
        assert 'policyd_decisions_total{check="outbound",result="accepted"} 1' in response
        assert "policyd_request_seconds_count 2" in response
        assert "policyd_store_errors_total 0" in response

    asyncio.run(scenario())


def test_the_command_serves_and_stops_on_sigterm(valkey):
    process, port = start_policyd(
        valkey.url, "--greylist-delay", "60", stderr=subprocess.PIPE, text=True
    )
    try:
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(request_bytes(sender=f"cli-{port}@example.org"))
            answer = connection.recv(4096)
        assert answer.startswith(b"action=DEFER_IF_PERMIT 4.7.1 Greylisted")
        assert b"retry in 60 seconds" in answer
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "policyd: serving" in stderr


def test_the_command_names_a_bad_setting():
    result = subprocess.run(
        [sys.executable, "-m", "mailstack.cli", "policyd", "--listen", "nowhere"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "listen" in result.stderr


def test_valkey_with_a_password(key_prefix):
    async def scenario(url: str) -> str:
        async with one_service(url, key_prefix, service=STORE) as (_server, mx):
            return await mx.ask()

    with ValkeyServer(password="s3cret-pass") as protected:
        assert asyncio.run(scenario(protected.url)).startswith("DEFER_IF_PERMIT")
        # A wrong password is a store failure like any other: greylisting lets mail through.
        wrong = protected.url.replace("s3cret-pass", "wrong")
        assert asyncio.run(scenario(wrong)) == "DUNNO"


def test_a_client_gone_in_the_middle_of_a_request_is_counted(valkey, key_prefix, caplog):
    async def scenario():
        async with one_service(valkey.url, key_prefix) as (server, mx):
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request_bytes()[:50])
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            for _ in range(50):
                if server.metrics.protocol_errors.get("incomplete"):
                    break
                await asyncio.sleep(0.02)
            assert server.metrics.protocol_errors.get("incomplete") == 1
            assert (await mx.ask()).startswith("DEFER_IF_PERMIT")

    with caplog.at_level(logging.INFO, logger="mailstack.policyd"):
        asyncio.run(scenario())
    assert any("in the middle of a request" in r.getMessage() for r in caplog.records)
