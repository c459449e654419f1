"""Message tracing: how long the platform keeps the log lines of each message's hops, and how
much a host may hold back while the database is away (roles/tracing.py, docs/tracing.md)."""

from pydantic import Field

from mailstack.settings.base import Model


class TracingSettings(Model):
    """Every mx and mailstore node hands its mail services' log lines to the account database,
    where the panel searches them (docs/tracing.md)."""

    retention_days: int = Field(
        7,
        ge=1,
        le=90,
        description="Days a trace line is kept; older lines (addresses, Message-IDs, client "
        "addresses: personal data) are deleted every hour.",
        examples=[3],
    )
    queue_max_mib: int = Field(
        512,
        ge=16,
        le=65536,
        description="MiB of trace lines a node keeps on disk while the database takes no "
        "writes (a failover, an outage); beyond it, the oldest waiting lines are dropped, and "
        "mail itself is never held up.",
    )
