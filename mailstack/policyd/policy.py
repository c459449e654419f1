"""The decisions: greylisting for unauthenticated mail, the recipient limit for authenticated.

Where recipients are counted (docs/policyd.md): Postfix asks at RCPT, as the last of
smtpd_recipient_restrictions, so recipients refused by any other check never get here. A
recipient that fits the window is reserved for its transaction; at END-OF-MESSAGE
(smtpd_end_of_data_restrictions) the transaction's reservations become charges, at most
`recipient_count` of them. Reservations of a transaction that never ends (client gave up,
refused at DATA) lapse after `hold_seconds` and are not charged.
"""

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from mailstack.policyd.accounts import LimitClasses
from mailstack.policyd.addresses import (
    NetworkSet,
    client_network,
    normalise_recipient,
    normalise_sender,
    parse_address,
)
from mailstack.policyd.allowlist import Allowlist
from mailstack.policyd.config import PolicydConfig
from mailstack.policyd.metrics import Metrics
from mailstack.policyd.store import Store, StoreUnavailable

log = logging.getLogger("mailstack.policyd")

DUNNO = "DUNNO"


@dataclass(frozen=True)
class Decision:
    check: str
    """'greylist', 'outbound' or 'none'."""
    result: str
    """What happened, the metric label: 'new', 'passed', 'limited', 'store-failure', ..."""
    action: str
    """The action sent to Postfix."""


def seconds_ceil(milliseconds: int) -> int:
    """Milliseconds as whole seconds, rounded up, so 'retry in N seconds' is never too early."""
    return max(0, math.ceil(milliseconds / 1000))


def greylist_text(wait_ms: int, first_attempt: bool) -> str:
    wait = seconds_ceil(wait_ms)
    why = "first attempt" if first_attempt else "retried too early"
    return f"DEFER_IF_PERMIT 4.7.1 Greylisted ({why}), please retry in {wait} seconds"


def limit_text(user: str, limit: int, window_ms: int, retry_after_ms: int) -> str:
    return (
        f"451 4.7.1 Recipient limit reached: {user} may send to {limit} recipients in "
        f"{seconds_ceil(window_ms)} seconds; retry in {max(1, seconds_ceil(retry_after_ms))} seconds"
    )


LIMIT_UNCHECKED_TEXT = (
    "451 4.7.1 The recipient limit cannot be checked right now; please retry in a few minutes"
)


SIEVE_CONTEXT = "sieve"
"""policy_context of the mx listener that takes the mail Dovecot's Sieve sends for a user
(redirects, vacation replies): that mail counts against the user whose address is its sender."""


def sending_user(request: dict[str, str]) -> str:
    """Whose outbound limit a request counts against: the logged-in user on submission, the
    sender on the Sieve listener; empty for inbound mail."""
    if request.get("sasl_username"):
        return request["sasl_username"]
    if request.get("policy_context") == SIEVE_CONTEXT:
        return request.get("sender", "").lower()
    return ""


def triplet_digest(sender: str, recipient: str) -> str:
    """Bounded-size key part for a (normalised) sender and recipient."""
    return hashlib.blake2b(f"{sender}\0{recipient}".encode(), digest_size=12).hexdigest()


class Policy:
    def __init__(
        self,
        config: PolicydConfig,
        store: Store,
        classes: LimitClasses,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ):
        self.config = config
        self.classes = classes
        self.greylisting = config.greylisting
        self.outbound = config.outbound_limit
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.allowlist = Allowlist.from_settings(config.greylisting)
        self.trusted = NetworkSet(config.trusted_networks)
        limits = [self.outbound.default.recipients, self.outbound.default.window_seconds * 1000]
        for name, limit in self.outbound.classes.items():
            limits += [name, limit.recipients, limit.window_seconds * 1000]
        self._limit_args = limits

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def decide(self, request: dict[str, str]) -> Decision:
        state = request.get("protocol_state", "").upper()
        user = sending_user(request)
        if user:
            if not self.outbound.enabled:
                return Decision("none", "limit-disabled", DUNNO)
            if state == "RCPT":
                return await self._outbound_check(user, request)
            if state == "END-OF-MESSAGE":
                return await self._outbound_commit(user, request)
            return Decision("none", "other-state", DUNNO)
        if state == "RCPT":
            return await self._greylist(request)
        return Decision("none", "other-state", DUNNO)

    async def _greylist(self, request: dict[str, str]) -> Decision:
        settings = self.greylisting
        if not settings.enabled:
            return Decision("greylist", "disabled", DUNNO)
        client = request.get("client_address", "")
        address = parse_address(client)
        if address is None:
            log.warning("greylist: no valid client_address %r; not greylisted", client[:64])
            return Decision("greylist", "no-client-address", DUNNO)
        if address in self.trusted:
            return Decision("greylist", "trusted", DUNNO)
        network = client_network(address, settings.ipv4_prefix, settings.ipv6_prefix)
        sender = normalise_sender(request.get("sender", ""))
        recipient = normalise_recipient(request.get("recipient", ""))
        if self.allowlist.reason(address, request.get("client_name", ""), sender, recipient):
            return Decision("greylist", "allow-listed", DUNNO)
        try:
            verdict, number = await self.store.greylist(
                self.store.key("grey", network, triplet_digest(sender, recipient)),
                self.store.key("grey-net", network),
                self._now_ms(),
                settings.delay_seconds * 1000,
                settings.retry_window_seconds * 1000,
                settings.expiry_seconds * 1000,
                settings.auto_allow_after,
            )
        except StoreUnavailable as error:
            # Greylisting is a spam filter, not a gate: without its state, mail goes through.
            log.warning(
                "greylist: Valkey unavailable (%s); letting client=%s sender=%s recipient=%s pass",
                error,
                client,
                sender,
                recipient,
            )
            return Decision("greylist", "store-failure", DUNNO)
        if verdict in ("new", "early"):
            # Postfix logs every deferral with its text ("NOQUEUE: reject: RCPT ... Greylisted");
            # a second line per deferral here would only cost time under a flood.
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "greylist: %s client=%s network=%s sender=%s recipient=%s retry_in=%ss",
                    verdict,
                    client,
                    network,
                    sender,
                    recipient,
                    seconds_ceil(number),
                )
            return Decision("greylist", verdict, greylist_text(number, verdict == "new"))
        if verdict == "passed":
            log.info(
                "greylist: passed client=%s network=%s sender=%s recipient=%s passes=%d",
                client,
                network,
                sender,
                recipient,
                number,
            )
        return Decision("greylist", verdict, DUNNO)

    async def _outbound_check(self, user: str, request: dict[str, str]) -> Decision:
        instance = request.get("instance", "") or "-"
        limit_class = await self.classes.limit_class(user)
        try:
            result = await self.store.outbound_check(
                user,
                limit_class,
                instance,
                self._now_ms(),
                self.outbound.hold_seconds * 1000,
                self._limit_args,
            )
        except StoreUnavailable as error:
            return self._outbound_store_failure(user, error)
        if result[0] == "ok":
            return Decision("outbound", "accepted", DUNNO)
        _, used, limit, window_ms, retry_after_ms, hits, limit_class, new_hit = result
        log.info(
            "outbound limit: refused user=%s class=%s recipient=%s used=%d limit=%d window=%ds "
            "retry_in=%ss",
            user,
            limit_class,
            request.get("recipient", ""),
            used,
            limit,
            seconds_ceil(window_ms),
            seconds_ceil(retry_after_ms),
        )
        self.metrics.refused.inc(user, "limit")
        if new_hit and hits >= self.outbound.report_after_hits:
            self.metrics.limit_reports.inc(user)
            log.warning(
                "outbound limit: REPORT user=%s hit the limit in %d transactions within %d s; "
                "the account may be compromised",
                user,
                hits,
                seconds_ceil(window_ms),
            )
        return Decision("outbound", "limited", limit_text(user, limit, window_ms, retry_after_ms))

    async def _outbound_commit(self, user: str, request: dict[str, str]) -> Decision:
        instance = request.get("instance", "") or "-"
        # Without a usable recipient_count every reservation of the transaction is charged.
        try:
            count = int(request.get("recipient_count", ""))
        except ValueError:
            count = -1
        try:
            charged = await self.store.outbound_commit(user, instance, self._now_ms(), count)
        except StoreUnavailable as error:
            if count > 0:
                self.metrics.sent_recipients.inc(user, amount=count)
            # The message has passed every check; refusing it now for bookkeeping would only
            # make the client send it again.
            log.warning(
                "outbound limit: Valkey unavailable (%s); %d recipients of user=%s not charged",
                error,
                count,
                user,
            )
            return Decision("outbound", "commit-store-failure", DUNNO)
        if charged > 0:
            self.metrics.sent_recipients.inc(user, amount=charged)
        return Decision("outbound", "charged", DUNNO)

    def _outbound_store_failure(self, user: str, error: StoreUnavailable) -> Decision:
        action = self.outbound.on_store_failure
        log.warning(
            "outbound limit: Valkey unavailable (%s); %s user=%s per on_store_failure",
            error,
            "deferring" if action == "defer" else "allowing",
            user,
        )
        if action == "defer":
            self.metrics.refused.inc(user, "unchecked")
            return Decision("outbound", "store-failure-defer", LIMIT_UNCHECKED_TEXT)
        return Decision("outbound", "store-failure-allow", DUNNO)
