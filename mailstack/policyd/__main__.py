"""`python -m mailstack.policyd`: the service alone, as hosts run it.

The `mailstack` command also loads the operator's tools (the lab, Pulumi), whose dependencies
hosts do not have; this entry point needs only the service's own.
"""

import argparse
import sys

from mailstack.policyd import cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mailstack.policyd",
        description="The policy service: greylisting and the outbound recipient limit.",
    )
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
