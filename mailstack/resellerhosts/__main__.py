"""`python -m mailstack.resellerhosts --config FILE`: one run of the reseller-hosts job (see the
package's docstring). Exit status 0 when every step succeeded, 1 when one failed (it is retried
by a later run), 2 for a bad configuration."""

import argparse
import logging
import sys

from mailstack.resellerhosts.job import Config, Node, read_resellers, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mailstack.resellerhosts")
    parser.add_argument("--config", required=True, help="the job's JSON configuration")
    parser.add_argument(
        "--check-config", action="store_true", help="read the configuration, then stop"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        config = Config.read(args.config)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"reseller-hosts: {args.config}: {error!r}", file=sys.stderr)
        return 2
    if args.check_config:
        return 0
    return 1 if run(config, Node(config), read_resellers(config.accounts_dsn)) else 0


if __name__ == "__main__":
    sys.exit(main())
