"""`python -m mailstack.tracing --config FILE`: the ingester rsyslog's omprog runs
(mailstack.tracing.ingest); `--check-config` only reads the file and exits 0, or 1 naming the
error."""

import argparse
import json
import sys
from pathlib import Path

from pydantic import Field, ValidationError

from mailstack.settings.base import Model
from mailstack.tracing import ingest


class TracingConfig(Model):
    """The ingester's configuration file (root-only: it holds a password)."""

    dsn: str = Field(
        description="libpq connection string to the account database's primary, as the trace "
        "role (INSERT on tracing_event only)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mailstack.tracing",
        description="Store the mail services' log lines for message tracing (rsyslog omprog).",
    )
    parser.add_argument("--config", type=Path, required=True, help="the JSON configuration")
    parser.add_argument("--check-config", action="store_true", help="check it and exit")
    args = parser.parse_args(argv)
    try:
        config = TracingConfig.model_validate(json.loads(args.config.read_text()))
    except (OSError, ValueError, ValidationError) as error:
        print(f"{args.config}: {error}", file=sys.stderr)
        return 1
    if args.check_config:
        return 0
    # omprog discards the program's stderr: what stops it is said in the journal.
    ingest.log_to_syslog()
    try:
        ingest.drop_privileges()
        return ingest.main_loop(config.dsn)
    except Exception:
        ingest.log.exception("tracing: the ingester stopped")
        return 1


if __name__ == "__main__":
    sys.exit(main())
