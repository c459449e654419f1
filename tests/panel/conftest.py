"""The account-data fixtures (panel_postgres.py), which the benchmarks share."""

from panel_postgres import (  # noqa: F401
    accounts,
    example_org,
    lookup,
    manage,
    manage_py,
    panel_django,
    postgres,
)
from panel_tenants import tenants  # noqa: F401
