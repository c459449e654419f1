"""`mailstack cloud ...`: fence servers and move volumes by hand, as failover does."""

import argparse
import sys

from mailstack.failover import hetzner


def _servers(client, args) -> None:
    for server in sorted(hetzner.server_status(client, args.server), key=lambda s: s.name):
        print(f"{server.name:<24} {server.id:>10}  {server.status}")


def _volumes(client, args) -> None:
    for volume in hetzner.volume_status(client, args.volume):
        where = volume.server or "(detached)"
        print(
            f"{volume.name:<24} {volume.id:>10}  {volume.size_gb:>5} GB  {where:<20} "
            f"{volume.linux_device}"
        )


def _fence(client, args) -> None:
    seconds = hetzner.fence(client, args.server, timeout=args.timeout)
    print(f"{args.server} is off ({seconds:.2f} s)")


def _power_on(client, args) -> None:
    seconds = hetzner.power_on(client, args.server, timeout=args.timeout)
    print(f"{args.server} is on ({seconds:.2f} s)")


def _attach(client, args) -> None:
    seconds = hetzner.move_volume(
        client, args.volume, args.server, args.timeout, args.allow_running_source
    )
    print(f"{args.volume} is attached to {args.server} ({seconds:.2f} s)")


def _detach(client, args) -> None:
    seconds = hetzner.detach_volume(client, args.volume, args.timeout, args.allow_running_source)
    print(f"{args.volume} is detached ({seconds:.2f} s)")


def _run(args: argparse.Namespace) -> int:
    try:
        config = hetzner.CloudConfig.load(args.env_file)
        args.cloud_func(hetzner.connect(config), args)
    except hetzner.FailoverError as error:
        print(f"mailstack cloud: {error}", file=sys.stderr)
        return 1
    return 0


def register(commands) -> None:
    """Add `cloud` and its subcommands to the `mailstack` command."""
    cloud = commands.add_parser(
        "cloud", help="fence servers and move volumes through the Hetzner Cloud API"
    )
    cloud.add_argument(
        "--env-file",
        default=None,
        help="file with HCLOUD_TOKEN and HCLOUD_ENDPOINT (default: the environment); the "
        "lab's is .lab/<name>/hcloud.env",
    )
    cloud.add_argument(
        "--timeout", type=float, default=60.0, help="seconds an operation may take (default 60)"
    )
    cloud.set_defaults(func=_run)
    sub = cloud.add_subparsers(dest="cloud_command", required=True)
    servers = sub.add_parser("servers", help="servers and their power state")
    servers.add_argument("server", nargs="?", help="only this server")
    servers.set_defaults(cloud_func=_servers)
    volumes = sub.add_parser("volumes", help="volumes and where they are attached")
    volumes.add_argument("volume", nargs="?", help="only this volume")
    volumes.set_defaults(cloud_func=_volumes)
    fence = sub.add_parser("fence", help="power a server off (hard) and wait until it is off")
    fence.add_argument("server")
    fence.set_defaults(cloud_func=_fence)
    power_on = sub.add_parser("power-on", help="power a server on")
    power_on.add_argument("server")
    power_on.set_defaults(cloud_func=_power_on)
    for name, func, text in (
        ("attach", _attach, "attach a volume to a server, detaching it where it is"),
        ("detach", _detach, "detach a volume from its server"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("volume")
        if name == "attach":
            command.add_argument("server")
        command.add_argument(
            "--allow-running-source",
            action="store_true",
            help="take the volume from a server that is not off (only once nothing there uses it)",
        )
        command.set_defaults(cloud_func=func)
