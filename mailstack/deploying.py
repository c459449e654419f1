"""What pyinfra roles know about the environment they deploy, from the host's inventory data."""

import hashlib
from pathlib import Path

from mailstack.inventory import load_settings
from mailstack.secrets import SecretStore, secret_store
from mailstack.topology import plan_load_balancers

MAILSTORE_SASL_PORT = 12345
"""Dovecot's auth service for Postfix's SASL, on the mailstore nodes' private addresses."""

LMTP_USER_CONCURRENCY = 10
"""Deliveries Dovecot takes at once for one mailbox (more get 451); the mx hosts share them."""

APP_ROOT = "/opt/mailstack"
APP_SOURCE = f"{APP_ROOT}/src"
APP_VENV = f"{APP_ROOT}/venv"
REPOSITORY = Path(__file__).resolve().parents[1]


def code_version() -> str:
    """A digest of the code roles/venv.py copies to hosts, so services restart when it changes."""
    digest = hashlib.sha256()
    for package in ("mailstack", "panel"):
        for path in sorted((REPOSITORY / package).rglob("*.py")):
            digest.update(str(path.relative_to(REPOSITORY)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def settings(host):
    """The settings the environment runs with (a lab's own, re-based ones in the lab)."""
    return load_settings(host.data.get("settings_file"), host.data.get("stack"))


def secrets(host) -> SecretStore:
    """The environment's generated secrets: beside the lab's state, or per stack elsewhere."""
    return secret_store(host.data.get("stack"), host.data.get("lab_file"))


def load_balancer_ips(host) -> list[str]:
    """Private addresses the load balancers connect from (trusted for PROXY protocol)."""
    return [str(lb.private_ip) for lb in plan_load_balancers(settings(host))]


def lab_state(host):
    """The lab's state (lab-only settings, addresses); only lab-only roles ask for it."""
    from mailstack.lab.lab import LabState

    lab_file = host.data.get("lab_file")
    if not lab_file:
        raise RuntimeError(f"{host.name} has no lab_file in its data: not a lab host")
    return LabState.read(lab_file)


def lab_pki_dir(host) -> Path:
    """The lab CA's directory beside the lab's state (`.lab/<name>/pki`)."""
    return Path(host.data.get("lab_file")).parent / "pki"


def group_hosts(inventory, group: str) -> list[dict]:
    """The hosts of a group as {'name', 'private_ip'}, in inventory order."""
    return [
        {"name": member.data.get("name"), "private_ip": member.data.get("private_ip")}
        for member in inventory.get_group(group, default=[])
    ]
