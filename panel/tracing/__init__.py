"""Message tracing in the panel: the trace lines the mx and mailstore nodes store
(mailstack.tracing), searched within a Scope (docs/tracing.md)."""
