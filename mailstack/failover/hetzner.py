"""Fencing and volume moves through the Hetzner Cloud API: what failover does to other nodes.

Used by the cluster's fence agent and volume resource agent on the hosts, and by operators
(`mailstack cloud ...`). The only configuration is the API endpoint and token, `HCLOUD_ENDPOINT`
(Hetzner's own when unset) and `HCLOUD_TOKEN`, taken from an environment file (`KEY=VALUE`
lines, as systemd's EnvironmentFile= reads them) or the environment: the same code drives
Hetzner and the lab's API (`mailstack lab up` writes `.lab/<name>/hcloud.env`).

Written against the official `hcloud` library 2.3 (Debian 13's python3-hcloud) and later 2.x.
Every function takes a timeout in seconds for the whole operation, checked between API calls
(one call may take the client's request timeout, plus the library's own retries of a request
that timed out); every failure is a `FailoverError` saying what did not happen.
"""

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import requests
from hcloud import APIException, Client

ENDPOINT_VARIABLE = "HCLOUD_ENDPOINT"
TOKEN_VARIABLE = "HCLOUD_TOKEN"
APPLICATION = "mailstack-failover"

T = TypeVar("T")


class FailoverError(Exception):
    """A fence or volume operation did not happen (or not in time); the message says why."""


class ConfigurationError(FailoverError):
    """No usable API token or endpoint."""


class NotFound(FailoverError):
    """No server or volume of that name."""


class ApiFailure(FailoverError):
    """The API refused the request, failed the action or could not be reached."""


class Timeout(FailoverError):
    """The operation did not finish within its timeout."""


class UnsafeMove(FailoverError):
    """The volume is attached to a server that runs: taking it away could leave two writers."""


@dataclass(frozen=True)
class CloudConfig:
    """Where the API is and the token for it."""

    token: str
    endpoint: str | None = None
    """None: the library's default, Hetzner's public API."""

    @classmethod
    def load(cls, env_file: str | Path | None = None, environ: Mapping[str, str] = os.environ):
        """From `env_file` if given, else from the environment. Raises ConfigurationError."""
        if env_file is not None:
            values = read_env_file(env_file)
            source = str(env_file)
        else:
            values, source = environ, "the environment"
        token = values.get(TOKEN_VARIABLE, "").strip()
        if not token:
            raise ConfigurationError(f"no {TOKEN_VARIABLE} in {source}")
        endpoint = values.get(ENDPOINT_VARIABLE, "").strip() or None
        if endpoint and not endpoint.startswith(("https://", "http://")):
            raise ConfigurationError(f"{ENDPOINT_VARIABLE} in {source} is not a URL: {endpoint}")
        return cls(token=token, endpoint=endpoint)


def read_env_file(path: str | Path) -> dict[str, str]:
    """`KEY=VALUE` lines; blank lines and `#` comments skipped, one level of quotes removed."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error.strerror or error}") from None
    values = {}
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.partition("=")
        if not equals or not key.strip():
            raise ConfigurationError(f"{path}:{number}: not KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def connect(config: CloudConfig, request_timeout: float = 10.0) -> Client:
    """A client of the configured API; each HTTP request gives up after `request_timeout` s."""
    options = {"api_endpoint": config.endpoint} if config.endpoint else {}
    return Client(
        token=config.token, application_name=APPLICATION, timeout=request_timeout, **options
    )


@dataclass(frozen=True)
class ServerState:
    name: str
    id: int
    status: str
    """Hetzner's: running, off, starting, stopping, ..."""


@dataclass(frozen=True)
class VolumeState:
    name: str
    id: int
    server: str | None
    """Name of the server it is attached to, None when detached."""
    linux_device: str
    size_gb: int


def _call(what: str, request: Callable[[], T]) -> T:
    try:
        return request()
    except APIException as error:
        raise ApiFailure(f"{what}: the API answered {error.code}: {error.message}") from None
    except requests.RequestException as error:
        raise ApiFailure(f"{what}: cannot reach the API: {error}") from None


def _server(client: Client, name: str):
    server = _call(f"look up server {name}", lambda: client.servers.get_by_name(name))
    if server is None:
        raise NotFound(f"no server named {name!r}")
    return server


def _volume(client: Client, name: str):
    volume = _call(f"look up volume {name}", lambda: client.volumes.get_by_name(name))
    if volume is None:
        raise NotFound(f"no volume named {name!r}")
    return volume


def _wait(client: Client, action, deadline: float, what: str) -> None:
    """Poll the action until it is no longer running; its error is an ApiFailure."""
    delay = 0.05
    action_id = action.id
    while action.status == "running":
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout(f"{what}: action {action.id} still running at the timeout")
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 1.0)
        action = _call(f"{what}: poll action", lambda: client.actions.get_by_id(action_id))
    if action.status != "success":
        error = action.error or {}
        raise ApiFailure(
            f"{what}: action {action.id} ended {action.status}: "
            f"{error.get('code', '?')}: {error.get('message', '')}"
        )


def _wait_for_status(client: Client, name: str, status: str, deadline: float) -> None:
    while (current := _server(client, name).status) != status:
        if time.monotonic() > deadline:
            raise Timeout(f"server {name} is {current}, not {status}, at the timeout")
        time.sleep(0.1)


def server_status(client: Client, name: str | None = None) -> list[ServerState]:
    """One server by name, or every server of the project, with its power state."""
    servers = [_server(client, name)] if name else _call("list servers", client.servers.get_all)
    return [ServerState(name=s.name, id=s.id, status=s.status) for s in servers]


def volume_status(client: Client, name: str | None = None) -> list[VolumeState]:
    """One volume by name, or every volume of the project, with the server each is attached to."""
    volumes = [_volume(client, name)] if name else _call("list volumes", client.volumes.get_all)
    servers = {s.id: s.name for s in _call("list servers", client.servers.get_all)}
    return [
        VolumeState(
            name=volume.name,
            id=volume.id,
            server=servers.get(volume.server.id, str(volume.server.id)) if volume.server else None,
            linux_device=volume.linux_device,
            size_gb=volume.size,
        )
        for volume in volumes
    ]


def fence(client: Client, server_name: str, timeout: float = 60.0) -> float:
    """Power the server off (a hard power cut, not a shutdown) and wait until the API reports it
    `off`. A server already off stays off. Returns the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout
    server = _server(client, server_name)
    if server.status != "off":
        action = _call(f"power off {server_name}", server.power_off)
        _wait(client, action, deadline, f"power off {server_name}")
        _wait_for_status(client, server_name, "off", deadline)
    return time.monotonic() - started


def power_on(client: Client, server_name: str, timeout: float = 60.0) -> float:
    """Power the server on (it then boots); returns the seconds until the API reported it on."""
    started = time.monotonic()
    deadline = started + timeout
    server = _server(client, server_name)
    if server.status != "running":
        _wait(client, _call(f"power on {server_name}", server.power_on), deadline, "power on")
        _wait_for_status(client, server_name, "running", deadline)
    return time.monotonic() - started


def _release(client: Client, volume, deadline: float, allow_running_source: bool) -> None:
    """Detach the volume from its server, which must be off unless `allow_running_source`."""
    source = _call("look up server", lambda: client.servers.get_by_id(volume.server.id))
    if source.status != "off" and not allow_running_source:
        raise UnsafeMove(
            f"volume {volume.name} is attached to {source.name}, which is {source.status}: "
            "fence it first (or allow a running source once it has unmounted the volume)"
        )
    action = _call(f"detach {volume.name}", volume.detach)
    _wait(client, action, deadline, f"detach {volume.name} from {source.name}")


def detach_volume(
    client: Client, volume_name: str, timeout: float = 60.0, allow_running_source: bool = False
) -> float:
    """Detach the volume from wherever it is attached; returns the seconds it took."""
    started = time.monotonic()
    volume = _volume(client, volume_name)
    if volume.server is not None:
        _release(client, volume, started + timeout, allow_running_source)
    return time.monotonic() - started


def move_volume(
    client: Client,
    volume_name: str,
    to_server: str,
    timeout: float = 60.0,
    allow_running_source: bool = False,
) -> float:
    """Attach the volume to `to_server`, detaching it first from the server it is attached to,
    which must be off (fenced) unless `allow_running_source` (the cluster stopped the volume's
    users there). A volume already there stays. Verified through the API; returns the seconds it
    took. The volume appears in the server as `VolumeState.linux_device`."""
    started = time.monotonic()
    deadline = started + timeout
    volume = _volume(client, volume_name)
    target = _server(client, to_server)
    if volume.server is not None and volume.server.id == target.id:
        return time.monotonic() - started
    if volume.server is not None:
        _release(client, volume, deadline, allow_running_source)
    action = _call(
        f"attach {volume_name} to {to_server}",
        lambda: volume.attach(target, automount=False),
    )
    _wait(client, action, deadline, f"attach {volume_name} to {to_server}")
    attached = _volume(client, volume_name).server
    if attached is None or attached.id != target.id:
        raise ApiFailure(f"volume {volume_name} is not attached to {to_server} after the attach")
    return time.monotonic() - started
