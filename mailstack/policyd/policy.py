"""The decisions: greylisting for unauthenticated mail, the recipient limit for authenticated.

Where recipients are counted (docs/policyd.md): Postfix asks at RCPT, as the last of
smtpd_recipient_restrictions, so recipients refused by any other check never get here. A
recipient that fits the window is reserved for its transaction; at END-OF-MESSAGE
(smtpd_end_of_data_restrictions) the transaction's reservations become charges, at most
`recipient_count` of them. Reservations of a transaction that never ends (client gave up,
refused at DATA) lapse after `hold_seconds` and are not charged.
"""

import datetime
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from mailstack.policyd.accounts import Account, Accounts
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


HOLD_REASONS = {
    "limit": "it kept hitting its recipient limit",
    "scan": "the outbound scan refused its mail as spam or a virus",
}


def hold_text(user: str, reason: str) -> str:
    why = HOLD_REASONS.get(reason, "of suspected abuse")
    return (
        f"550 5.7.1 Sending from {user} is on hold because {why}; receiving and reading mail "
        "go on. Ask your mail administrator to release it"
    )


SCAN_REPORTS_KEPT = 5
"""The newest scan refusals of a user kept as evidence for their hold."""


def utc_iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="seconds")


def scan_summary(report: dict, at: float) -> dict:
    """What a hold's evidence keeps of one rspamd report: no subject or body, only what
    identifies the message and the verdict."""
    symbols = report.get("symbols")
    names = []
    if isinstance(symbols, list):
        scored = [s for s in symbols if isinstance(s, dict) and isinstance(s.get("name"), str)]
        scored.sort(key=lambda s: -float(s.get("score") or 0))
        names = [s["name"] for s in scored[:8]]
    recipients = report.get("rcpt")
    return {
        "at": utc_iso(at),
        "queue_id": str(report.get("qid", ""))[:32],
        "client": str(report.get("ip", ""))[:64],
        "action": str(report.get("action", ""))[:32],
        "score": report.get("score") if isinstance(report.get("score"), int | float) else None,
        "recipients": len(recipients) if isinstance(recipients, list) else 0,
        "symbols": names,
    }


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
        accounts: Accounts,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ):
        self.config = config
        self.accounts = accounts
        self.sending_hold = config.outbound_limit.sending_hold
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
                account = await self.accounts.account(user)
                if account.hold and request.get("sasl_username"):
                    # Submission only: what Sieve sends for the user (vacation replies,
                    # redirects) is mail they receive, which goes on.
                    self.metrics.refused.inc(user, "hold")
                    return Decision("outbound", "held", hold_text(user, account.hold))
                return await self._outbound_check(user, account, request)
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

    async def _outbound_check(
        self, user: str, account: Account, request: dict[str, str]
    ) -> Decision:
        instance = request.get("instance", "") or "-"
        try:
            result = await self.store.outbound_check(
                user,
                account.limit_class,
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
        if new_hit and hits >= self.sending_hold.after_limit_hits and request.get("sasl_username"):
            evidence = {
                "threshold": self.sending_hold.after_limit_hits,
                "count": hits,
                "window_seconds": seconds_ceil(window_ms),
                "limit": limit,
                "limit_class": limit_class,
                "last_refusal": {
                    "at": utc_iso(self.clock()),
                    "client": request.get("client_address", "")[:64],
                    "recipient": request.get("recipient", "")[:320],
                },
            }
            await self._hold(user, "limit", evidence)
        return Decision("outbound", "limited", limit_text(user, limit, window_ms, retry_after_ms))

    async def scan_refused(self, report: dict) -> bool:
        """Count a message of an authenticated user the outbound scan refused (rspamd's report)
        and hold the user at `sending_hold.after_scan_refusals`; False when the report names no
        user. Raises StoreUnavailable."""
        user = report.get("user")
        if not isinstance(user, str) or not user or user == "unknown" or len(user) > 320:
            return False
        now = self.clock()
        summary = scan_summary(report, now)
        settings = self.sending_hold
        count, kept = await self.store.scan_refusal(
            user,
            int(now * 1000),
            settings.scan_window_seconds * 1000,
            f"{now:.6f}:{summary['queue_id']}",
            json.dumps(summary),
            SCAN_REPORTS_KEPT,
        )
        self.metrics.scan_refused.inc(user)
        log.info(
            "sending hold: the outbound scan refused a message of user=%s queue_id=%s "
            "(%d within %d s)",
            user,
            summary["queue_id"],
            count,
            settings.scan_window_seconds,
        )
        if count >= settings.after_scan_refusals and self.outbound.enabled:
            evidence = {
                "threshold": settings.after_scan_refusals,
                "count": count,
                "window_seconds": settings.scan_window_seconds,
                "last_refusals": [json.loads(item) for item in kept],
            }
            await self._hold(user, "scan", evidence)
        return True

    async def _hold(self, user: str, reason: str, evidence: dict) -> None:
        if not self.sending_hold.enabled:
            return
        try:
            made = await self.accounts.hold(user, reason, evidence)
        except (psycopg.Error, OSError, TimeoutError) as error:
            self.metrics.account_errors.inc()
            log.warning(
                "sending hold: could not hold user=%s (%s: %s); tried again at the next refusal",
                user,
                type(error).__name__,
                str(error).strip().splitlines()[0] if str(error).strip() else "",
            )
            return
        if made:
            self.metrics.holds.inc(user, reason)
            log.warning(
                "sending hold: HOLD user=%s reason=%s count=%d threshold=%d; submission refused "
                "until an admin releases it",
                user,
                reason,
                evidence["count"],
                evidence["threshold"],
            )

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
