"""The benchmarks run against the account-data test cluster (tests/panel/panel_postgres.py)."""

from panel_postgres import postgres  # noqa: F401
