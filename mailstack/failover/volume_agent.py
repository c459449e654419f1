"""ocf:mailstack:hcloud-volume: a Pacemaker resource agent that attaches a Hetzner Cloud volume
to the node it runs on.

- start: the volume comes here through the Hetzner Cloud API (`hetzner.move_volume`): detached
  from the server it is attached to only if that server is off (fenced), never from a running
  one, which Pacemaker never asks for (it stops the resource there, or fences that node, before
  it starts it here); then wait until the device appears.
- stop: detach it from this node (after the filesystem on it was stopped) and wait until the
  device is gone. A stop that cannot reach the API fails, and Pacemaker fences the node, so the
  volume is free either way.
- monitor: the device is there (attached to this node). Local, without the API, so an API
  outage never makes the cluster move a healthy volume.

Written on the resource-agents library (`ocf`, Debian's resource-agents); runs with the hosts'
Python 3 and Debian's python3-hcloud, imported only by the actions that call the API (the
monitor, every few seconds, stays cheap). Timeouts are the operation's own (Pacemaker's op timeout,
handed in as OCF_RESKEY_CRM_meta_timeout), less a margin for the agent itself.
"""

import functools
import os
import socket
import time

import ocf  # the resource-agents library, on the hosts only (the wrapper puts it on the path)

ENV_FILE = "/etc/mailstack/hcloud.env"
MARGIN_SECONDS = 5.0
"""Left of an operation's timeout for the agent's own start-up and the device's last check."""


def _timeout() -> float:
    milliseconds = int(ocf.get_parameter("CRM_meta_timeout", "60000"))
    return max(milliseconds / 1000 - MARGIN_SECONDS, 1.0)


def _node() -> str:
    """This node's name, which is its server's name at Hetzner."""
    return ocf.get_parameter("CRM_meta_on_node") or socket.gethostname()


def _hetzner():
    from mailstack.failover import hetzner

    return hetzner


def _client(env_file: str):
    hetzner = _hetzner()
    return hetzner.connect(hetzner.CloudConfig.load(env_file))


def _wait_for_device(device: str, present: bool, deadline: float) -> None:
    while os.path.exists(device) != present:
        if time.monotonic() > deadline:
            state = "appear" if present else "go"
            raise _hetzner().Timeout(f"{device} did not {state} before the operation's timeout")
        time.sleep(0.1)


def start(volume: str, device: str, env_file: str) -> int:
    deadline = time.monotonic() + _timeout()
    if not os.path.exists(device):
        _hetzner().move_volume(_client(env_file), volume, _node(), timeout=_timeout())
        _wait_for_device(device, True, deadline)
    ocf.logger.info("%s is attached here (%s)", volume, device)
    return ocf.OCF_SUCCESS


def stop(volume: str, device: str, env_file: str) -> int:
    deadline = time.monotonic() + _timeout()
    hetzner = _hetzner()
    client = _client(env_file)
    (state,) = hetzner.volume_status(client, volume)
    if state.server == _node():
        # Ours to give away: the filesystem on it was stopped before (the group's order).
        hetzner.detach_volume(client, volume, timeout=_timeout(), allow_running_source=True)
    _wait_for_device(device, False, deadline)
    ocf.logger.info("%s is detached from here", volume)
    return ocf.OCF_SUCCESS


def monitor(device: str) -> int:
    return ocf.OCF_SUCCESS if os.path.exists(device) else ocf.OCF_NOT_RUNNING


def validate_all(volume: str, device: str, env_file: str) -> int:
    if not device.startswith("/dev/"):
        ocf.ocf_exit_reason(f"device {device!r} is not a device path")
        return ocf.OCF_ERR_CONFIGURED
    hetzner = _hetzner()
    try:
        hetzner.CloudConfig.load(env_file)
    except hetzner.ConfigurationError as error:
        ocf.ocf_exit_reason(str(error))
        return ocf.OCF_ERR_CONFIGURED
    return ocf.OCF_SUCCESS


def _failing(handler):
    """An API failure is the operation's failure, with the client's words as the reason (the
    wrapper keeps the handler's signature, which the library reads the parameters from)."""

    @functools.wraps(handler)
    def run(*args):
        try:
            return handler(*args)
        except _hetzner().FailoverError as error:
            ocf.ocf_exit_reason(str(error))
            return ocf.OCF_ERR_GENERIC

    return run


def main() -> None:
    agent = ocf.Agent(
        "hcloud-volume",
        shortdesc="A Hetzner Cloud volume attached to this node",
        longdesc="Attaches a Hetzner Cloud volume to the node it runs on through the Hetzner "
        "Cloud API, taking it only from a server that is off (fenced), and detaches it when "
        "stopped. The monitor checks that the volume's device is present.",
    )
    agent.add_parameter(
        "volume", shortdesc="Volume name", longdesc="The volume's name at Hetzner.",
        required=True, unique=True,
    )  # fmt: skip
    agent.add_parameter(
        "device", shortdesc="Device path",
        longdesc="Where the volume appears once attached: /dev/disk/by-id/scsi-0HC_Volume_ and "
        "the volume's id.",
        required=True, unique=True,
    )  # fmt: skip
    agent.add_parameter(
        "env_file", shortdesc="API configuration",
        longdesc="File with HCLOUD_TOKEN (and HCLOUD_ENDPOINT to use another API than Hetzner's).",
        default=ENV_FILE,
    )  # fmt: skip
    agent.add_action("start", timeout=60, handler=_failing(start))
    agent.add_action("stop", timeout=60, handler=_failing(stop))
    agent.add_action("monitor", timeout=20, interval=10, handler=monitor)
    agent.add_action("validate-all", timeout=20, handler=validate_all)
    agent.run()
