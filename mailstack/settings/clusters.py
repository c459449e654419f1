"""The db nodes' clusters: PostgreSQL under Patroni (with etcd), Valkey with Sentinel.

In the `single` profile (one host) PostgreSQL and Valkey run on their own, without Patroni,
etcd or Sentinel; the failover fields below then have no effect, the others still do.
"""

from typing import Literal

from pydantic import Field, model_validator

from mailstack.settings.base import Model


class DatabaseSettings(Model):
    """PostgreSQL on the db nodes (the account data), under Patroni with etcd."""

    max_connections: int = Field(
        200,
        ge=20,
        le=10000,
        description="Most client connections PostgreSQL accepts (max_connections): Postfix's "
        "proxymap, Dovecot's auth and the policy service on every mx and mailstore node, and "
        "the panel on every web node. Under Patroni it is cluster-wide; a change restarts the "
        "nodes one after another.",
    )
    ttl_seconds: int = Field(
        20,
        ge=20,
        le=600,
        description="Patroni's leader lock lifetime (ttl): a primary that cannot renew it within "
        "this time stops taking writes, and a replica takes over once it has expired. The main "
        "part of the time from a primary's death to the first write on the new one. Patroni "
        "refuses less than 20 s.",
    )
    loop_wait_seconds: int = Field(
        3,
        ge=1,
        le=300,
        description="Seconds between the runs of Patroni's HA loop on each node (loop_wait).",
    )
    retry_timeout_seconds: int = Field(
        5,
        ge=1,
        le=300,
        description="How long Patroni retries etcd and PostgreSQL operations before it gives "
        "up (retry_timeout); a primary that cannot reach etcd for this long demotes itself.",
    )
    maximum_lag_on_failover_bytes: int = Field(
        1048576,
        ge=0,
        le=2**40,
        description="A replica more than this many bytes of WAL behind the primary is not "
        "promoted (maximum_lag_on_failover). With synchronous replication the synchronous "
        "standby holds every acknowledged commit whatever its replay lag; this bounds which "
        "other replica may take over.",
    )
    synchronous_strict: bool = Field(
        True,
        description="Patroni's synchronous_mode_strict. True: a commit is acknowledged only "
        "after a synchronous standby has it on disk, and a primary without any standby stops "
        "acknowledging writes (they wait) until one is back, so no acknowledged commit is ever "
        "lost. False: a primary left alone goes on alone, and a commit acknowledged then is "
        "lost if that primary dies before a standby has caught up.",
    )
    failover_bound_seconds: int = Field(
        35,
        ge=25,
        le=900,
        description="The longest time from a primary's death to the first write the new "
        "primary takes that the environment accepts; the failover drill holds the cluster to "
        "it. Settings whose worst case exceeds it are refused: ttl + loop_wait + retry_timeout "
        "(when the etcd leader dies with the primary, etcd renews every lease at its new "
        "leader's election, so the dead primary's lock lives a full ttl from then).",
    )

    @model_validator(mode="after")
    def _patroni_timing(self) -> "DatabaseSettings":
        needed = self.loop_wait_seconds + 2 * self.retry_timeout_seconds
        if self.ttl_seconds < needed:
            raise ValueError(
                f"ttl_seconds ({self.ttl_seconds}) must be at least loop_wait_seconds + "
                f"2 * retry_timeout_seconds ({needed}), or a primary demotes itself while a "
                "retry is still under way"
            )
        worst = self.ttl_seconds + self.loop_wait_seconds + self.retry_timeout_seconds
        if worst > self.failover_bound_seconds:
            raise ValueError(
                f"ttl_seconds + loop_wait_seconds + retry_timeout_seconds ({worst}) exceed "
                f"failover_bound_seconds ({self.failover_bound_seconds}): a failover could take "
                "longer than the bound"
            )
        return self


PolicyEviction = Literal["noeviction", "volatile-lru", "volatile-ttl"]
FilterEviction = Literal["noeviction", "volatile-lru", "volatile-ttl", "allkeys-lru"]


class PolicyStoreSettings(Model):
    """The Valkey instance of the policy service: greylisting and outbound limit windows."""

    maxmemory_mib: int = Field(
        256,
        ge=32,
        le=262144,
        description="Memory this instance may use for data, in MiB (maxmemory). Leave room on "
        "the db hosts for PostgreSQL and for Valkey's copy-on-write while it saves.",
    )
    maxmemory_policy: PolicyEviction = Field(
        "noeviction",
        description="What the instance does when full (maxmemory-policy): 'noeviction' refuses "
        "writes, which the policy service answers with its fault behaviour (by default: mail "
        "waits); the volatile policies drop keys that expire anyway (greylisting triplets) "
        "first. Never an allkeys policy: it would forget limit windows.",
    )


class FilterStoreSettings(Model):
    """The Valkey instance of rspamd: Bayes statistics, fuzzy hashes, caches."""

    maxmemory_mib: int = Field(
        512,
        ge=32,
        le=262144,
        description="Memory this instance may use for data, in MiB (maxmemory).",
    )
    maxmemory_policy: FilterEviction = Field(
        "volatile-lru",
        description="What the instance does when full (maxmemory-policy): 'volatile-lru' drops "
        "the least recently used keys that expire anyway (fuzzy hashes, caches) first; "
        "'allkeys-lru' may drop Bayes tokens too (the classifier gets less sure, mail flows); "
        "'noeviction' makes rspamd's writes fail when full.",
    )


class SentinelSettings(Model):
    """Valkey Sentinel on the db nodes: which Valkey is the primary, and failover."""

    quorum: int = Field(
        2,
        ge=1,
        le=9,
        description="Sentinels that must agree a primary is down before a failover starts "
        "(sentinel monitor's quorum); a majority of all Sentinels must still elect the one that "
        "performs it. At most the number of db nodes.",
    )
    down_after_ms: int = Field(
        5000,
        ge=1000,
        le=600000,
        description="Milliseconds a primary must stay silent before a Sentinel counts it down "
        "(down-after-milliseconds). Failover takes this plus an election of about a second; "
        "too short fails over on a passing stall.",
    )
    failover_timeout_ms: int = Field(
        60000,
        ge=10000,
        le=3600000,
        description="Sentinel's failover-timeout: how long a failover may take before another "
        "Sentinel retries it, and how long before a Sentinel tries the same primary again.",
    )

    @model_validator(mode="after")
    def _failover_after_down(self) -> "SentinelSettings":
        if self.failover_timeout_ms < 2 * self.down_after_ms:
            raise ValueError(
                f"failover_timeout_ms ({self.failover_timeout_ms}) must be at least twice "
                f"down_after_ms ({self.down_after_ms})"
            )
        return self


class ValkeySettings(Model):
    """Valkey on the db nodes: one instance per use, replicated, followed through Sentinel."""

    policy: PolicyStoreSettings = Field(
        PolicyStoreSettings(),
        description="The policy service's instance (greylisting, outbound limits).",
    )
    filters: FilterStoreSettings = Field(
        FilterStoreSettings(),
        description="rspamd's instance (Bayes, fuzzy hashes, caches).",
    )
    sentinel: SentinelSettings = Field(
        SentinelSettings(), description="Sentinel (failover of both instances)."
    )
