"""fence_mailstack_hcloud: Pacemaker's fence agent for servers at Hetzner Cloud.

Fencing = a hard power-off through the Hetzner Cloud API, verified until the API reports the
server `off` (`hetzner.fence`); the server stays off until an operator or `on` powers it on, so
a fenced node never writes to a volume again. The cluster asks for `off` (pcmk_reboot_action=off
on the device); `on`, `status`, `list` and `monitor` are there for operators and for Pacemaker.

Written on the fence-agents library (`fencing`, /usr/share/fence, Debian's fence-agents-common),
so it speaks the fence agent API (options on stdin or the command line, metadata, exit codes)
like every other agent. It runs with the hosts' Python 3 and Debian's python3-hcloud; the plug
is the server's name, which is the cluster node's name. Its one option of its own, `env_file`,
names the file with HCLOUD_TOKEN (and HCLOUD_ENDPOINT in the lab).
"""

import atexit
import logging
import sys

# The fence-agents library, on the hosts only (the agent's wrapper puts it on the path).
from fencing import (
    EC_GENERIC_ERROR,
    all_opt,
    atexit_handler,
    check_input,
    fence_action,
    process_input,
    run_delay,
    show_docs,
)

from mailstack.failover import hetzner

ENV_FILE = "/etc/mailstack/hcloud.env"


def _power(status: str) -> str:
    """The library's on/off from Hetzner's server status; a server on its way is neither."""
    return {"off": "off", "running": "on"}.get(status, "unknown")


def get_power_status(client, options) -> str:
    (server,) = hetzner.server_status(client, options["--plug"])
    return _power(server.status)


def set_power_status(client, options) -> None:
    timeout = float(options["--power-timeout"])
    if options["--action"] == "off":
        hetzner.fence(client, options["--plug"], timeout=timeout)
    else:
        hetzner.power_on(client, options["--plug"], timeout=timeout)


def get_nodes_list(client, options) -> dict:
    return {s.name: (s.name, _power(s.status)) for s in hetzner.server_status(client)}


def main() -> None:
    all_opt["env_file"] = {
        "getopt": ":",
        "longopt": "env-file",
        "help": f"--env-file=[path]              HCLOUD_TOKEN (and HCLOUD_ENDPOINT) (Default: {ENV_FILE})",
        "shortdesc": "File with the Hetzner Cloud API token (HCLOUD_TOKEN) and endpoint.",
        "default": ENV_FILE,
        "required": "0",
        "order": 2,
    }
    device_opt = ["port", "no_password", "no_login", "env_file"]
    atexit.register(atexit_handler)
    all_opt["power_timeout"]["default"] = "60"
    options = check_input(device_opt, process_input(device_opt))
    show_docs(
        options,
        {
            "shortdesc": "Fence agent for Hetzner Cloud servers (hard power-off via the API)",
            "longdesc": "fence_mailstack_hcloud powers a Hetzner Cloud server off through "
            "the Hetzner Cloud API (a hard power cut) and waits until the API reports it off. "
            "The plug is the server's name.",
            "vendorurl": "https://docs.hetzner.cloud",
        },
    )
    run_delay(options)
    try:
        config = hetzner.CloudConfig.load(options["--env-file"])
        client = hetzner.connect(config)
        result = fence_action(client, options, set_power_status, get_power_status, get_nodes_list)
    except hetzner.FailoverError as error:
        logging.error("Failed: %s", error)
        sys.exit(EC_GENERIC_ERROR)
    sys.exit(result)
