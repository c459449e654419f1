"""The lab as the Hetzner Cloud API shows it: its platform hosts as servers, its volumes, actions.

Objects have the JSON shapes of Hetzner's API (docs.hetzner.cloud) with the fields the lab can
fill truthfully; the official `hcloud` library reads them. Ids are stable per lab
(`volumes.resource_id`). Semantics mirrored from Hetzner:
- Actions are asynchronous: a POST answers 201 with the action `running`; it then turns
  `success` or `error` (with `error.code` and `error.message`), which clients poll for at
  GET /actions/{id}. While an action runs on a server or volume, another one is refused with
  423 `locked`.
- `poweroff` cuts the power (filesystems on the server's volumes are left as a crash leaves
  them, see `Lab.kill_host`), `poweron` boots, `reset` does both, `shutdown` asks the server's
  init to power off (ACPI) and succeeds once asked; the server turns `off` when it has stopped.
- Volumes attach to and detach from servers whatever their power state, so a fenced (off)
  server's volume can be taken away. A volume attached anywhere cannot be attached again
  (`volume_already_attached`): detach it first.
- `automount` is refused: the lab cannot mount a volume in a server, and the platform mounts
  its volumes itself.
"""

import copy
import itertools
import os
import re
import signal
import sys
import threading
import time
import traceback
from datetime import UTC, datetime

from mailstack.lab.hosts import LabHost, machine_name
from mailstack.lab.volumes import resource_id
from mailstack.settings.plan import plan_hosts, resource_labels, server_labels

SERVER_COMMANDS = {
    "poweroff": "stop_server",
    "poweron": "start_server",
    "reset": "reset_server",
    "shutdown": "shutdown_server",
}
STATEFUL_ROLES = {"db", "mailstore"}
"""Servers with delete and rebuild protection in production (`mailstack.cloud.servers`)."""
MAX_PER_PAGE = 50


class ApiError(Exception):
    """An error answer: HTTP status, Hetzner's error code and a message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def payload(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": {}}}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def matches_selector(labels: dict[str, str], selector: str) -> bool:
    """Whether labels match a Hetzner label selector: comma-separated `k=v`, `k==v`, `k!=v`,
    `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, all of which must hold."""
    for term in re.findall(r"[^,(]+(?:\([^)]*\))?", selector):
        term = term.strip()
        if not term:
            continue
        if found := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            key, operator, values = found.groups()
            inside = labels.get(key) in {v.strip() for v in values.split(",")}
            if inside != (operator == "in"):
                return False
        elif found := re.fullmatch(r"([\w./-]+)\s*(==|!=|=)\s*([\w./-]*)", term):
            key, operator, value = found.groups()
            if (labels.get(key) == value) != (operator != "!="):
                return False
        elif found := re.fullmatch(r"(!?)([\w./-]+)", term):
            negated, key = found.groups()
            if (key in labels) == bool(negated):
                return False
        else:
            raise ApiError(400, "invalid_input", f"invalid label_selector: {selector!r}")
    return True


class LabCloud:
    """The servers, volumes and actions of one lab, from its settings (the effective ones when
    the lab runs: addresses and names as its hosts have them)."""

    def __init__(self, lab, settings):
        self.lab = lab
        self.settings = settings
        self.location = settings.environment.location
        plans = plan_hosts(settings)
        self.plans = {plan.name: plan for plan in plans}
        self.hosts = {
            plan.name: LabHost(
                plan.name, tuple(plan.roles), (plan.private_ip,), machine_name(lab.name, plan.name)
            )
            for plan in plans
        }
        self.server_ids = {resource_id(lab.name, "server", name): name for name in self.hosts}
        self.network_id = resource_id(lab.name, "network", settings.environment.name)
        self._actions: dict[int, dict] = {}
        self._busy: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        # Ids keep growing across restarts of the API, so an old id never names a new action.
        self._action_ids = itertools.count(int(time.time() * 10))

    # --- servers ---------------------------------------------------------------------------------

    def server_id(self, name: str) -> int:
        return resource_id(self.lab.name, "server", name)

    def _server_name(self, server_id: int) -> str:
        if server_id not in self.server_ids:
            raise ApiError(404, "not_found", f"server with ID '{server_id}' not found")
        return self.server_ids[server_id]

    def server(self, server_id: int) -> dict:
        name = self._server_name(server_id)
        plan = self.plans[name]
        attachments = self.lab.volumes.attachments()
        protected = bool(STATEFUL_ROLES & set(plan.roles))
        return {
            "id": server_id,
            "name": name,
            "status": "running" if self.lab.running(self.hosts[name]) else "off",
            "created": self.lab.volumes.created(),
            "labels": server_labels(self.settings, plan),
            "server_type": {"name": plan.server_type},
            "datacenter": {"location": {"name": self.location}},
            # Lab hosts have no public addresses: nothing leaves the bridge.
            "public_net": {"ipv4": None, "ipv6": None, "floating_ips": [], "firewalls": []},
            "private_net": [
                {
                    "network": self.network_id,
                    "ip": str(plan.private_ip),
                    "alias_ips": [],
                    "mac_address": None,
                }
            ],
            "volumes": [
                volume.id
                for volume in self.lab.volumes.all()
                if attachments[volume.name] and attachments[volume.name].server == name
            ],
            "protection": {"delete": protected, "rebuild": protected},
            "locked": ("server", server_id) in self._busy,
            "rescue_enabled": False,
            "load_balancers": [],
        }

    def servers(self) -> list[dict]:
        return [self.server(server_id) for server_id in self.server_ids]

    def server_action(self, server_id: int, command: str) -> dict:
        name = self._server_name(server_id)
        if command not in SERVER_COMMANDS:
            raise ApiError(404, "not_found", f"no server action {command!r}")
        host = self.hosts[name]
        work = {
            "poweroff": lambda: self._power_off(host),
            "poweron": lambda: self.lab.start_host(host),
            "reset": lambda: (self._power_off(host), self.lab.start_host(host)),
            "shutdown": lambda: self._shutdown(host),
        }[command]
        return self._start(SERVER_COMMANDS[command], [("server", server_id)], work)

    def _power_off(self, host: LabHost) -> None:
        if self.lab.running(host):
            self.lab.kill_host(host)
        self.lab.volumes.wait_released(host)

    def _shutdown(self, host: LabHost) -> None:
        # systemd powers off on SIGRTMIN+4, as on an ACPI power button press.
        if self.lab.running(host):
            os.kill(self.lab.volumes.init_pid(host, timeout=5), signal.SIGRTMIN + 4)

    # --- volumes ---------------------------------------------------------------------------------

    def _volume(self, volume_id: int):
        for volume in self.lab.volumes.all():
            if volume.id == volume_id:
                return volume
        raise ApiError(404, "not_found", f"volume with ID '{volume_id}' not found")

    def volume(self, volume_id: int) -> dict:
        volume = self._volume(volume_id)
        attachment = self.lab.volumes.attachments()[volume.name]
        return {
            "id": volume.id,
            "name": volume.name,
            "server": self.server_id(attachment.server) if attachment else None,
            "location": {"name": self.location},
            "size": volume.size_gb,
            "linux_device": volume.linux_device,
            "format": "ext4",
            "protection": {"delete": True},
            "labels": resource_labels(self.settings),
            "status": "available",
            "created": self.lab.volumes.created(),
        }

    def volumes(self) -> list[dict]:
        return [self.volume(volume.id) for volume in self.lab.volumes.all()]

    def attach(self, volume_id: int, body: dict) -> dict:
        volume = self._volume(volume_id)
        server_id = body.get("server")
        if not isinstance(server_id, int) or isinstance(server_id, bool):
            raise ApiError(400, "invalid_input", "server: an integer server ID is required")
        host = self.hosts[self._server_name(server_id)]
        if body.get("automount"):
            raise ApiError(
                422, "invalid_input", "automount is not available in the lab: mount it yourself"
            )
        resources = [("volume", volume_id), ("server", server_id)]

        def check() -> None:
            attachment = self.lab.volumes.attachments()[volume.name]
            if attachment:
                raise ApiError(
                    409,
                    "volume_already_attached",
                    f"volume is already attached to server {self.server_id(attachment.server)}, "
                    "detach first",
                )

        return self._start(
            "attach_volume", resources, lambda: self.lab.volumes.attach(volume.name, host), check
        )

    def detach(self, volume_id: int) -> dict:
        volume = self._volume(volume_id)
        attachment = self.lab.volumes.attachments()[volume.name]
        if not attachment:
            raise ApiError(422, "invalid_input", "volume is not attached to a server")
        server_id = self.server_id(attachment.server)
        host = self.hosts[attachment.server]
        return self._start(
            "detach_volume",
            [("volume", volume_id), ("server", server_id)],
            lambda: self.lab.volumes.detach(volume.name, host),
        )

    # --- actions ---------------------------------------------------------------------------------

    def action(self, action_id: int) -> dict:
        with self._lock:
            if action_id not in self._actions:
                raise ApiError(404, "not_found", f"action with ID '{action_id}' not found")
            return copy.deepcopy(self._actions[action_id])

    def _start(self, command: str, resources: list[tuple[str, int]], work, check=None) -> dict:
        """Lock the resources, answer with the action `running`, do the work in the background."""
        with self._lock:
            for kind, resource in resources:
                if (kind, resource) in self._busy:
                    raise ApiError(423, "locked", f"{kind} {resource} has an action running")
            if check:
                check()
            self._busy.update(resources)
            action = {
                "id": next(self._action_ids),
                "command": command,
                "status": "running",
                "progress": 0,
                "started": _now(),
                "finished": None,
                "resources": [{"id": resource, "type": kind} for kind, resource in resources],
                "error": None,
            }
            self._actions[action["id"]] = action
            answer = copy.deepcopy(action)
        threading.Thread(target=self._run, args=(action, resources, work), daemon=True).start()
        return answer

    def _run(self, action: dict, resources: list[tuple[str, int]], work) -> None:
        outcome: dict = {"status": "success", "error": None}
        try:
            work()
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            outcome = {"status": "error", "error": {"code": "action_failed", "message": str(error)}}
        with self._lock:
            action.update(outcome, progress=100, finished=_now())
            self._busy.difference_update(resources)
