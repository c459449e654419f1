"""The policy service on mx hosts: greylisting and the outbound recipient limit (docs/policyd.md).

Packages; the service's own venv, installed from a wheelhouse prepared on the deploying machine
(no package index needed on the host); its configuration rendered from the settings; the systemd
unit; the service, restarted when any of them changed.
"""

import io
from pathlib import Path

from pyinfra import host, inventory
from pyinfra.operations import apt, files, pip, server, systemd
from pyinfra.operations.util import any_changed

from mailstack.policyd.config import PolicydConfig, dump_config
from mailstack.policyd.install import build_wheelhouse
from mailstack.settings import load_stack_file

ROOT = Path(__file__).resolve().parent.parent
VENV = "/opt/mailstack/policyd"
WHEELS = "/opt/mailstack/policyd-wheels"
CONFIG = "/etc/mailstack/policyd.json"
UNIT = "mailstack-policyd.service"
# Valkey runs on the db hosts (the Valkey role); Sentinel-aware addresses come with HA.
VALKEY_PORT = 6379

settings = load_stack_file(ROOT / "stacks" / f"Pulumi.{host.data.stack}.yaml")
service = settings.mail.policy_service
valkey_host = host.data.get("valkey_host") or inventory.get_group("db")[0].data.private_ip
config = PolicydConfig(
    # Postfix on the same host is the only client.
    listen=f"127.0.0.1:{service.port}",
    metrics_listen=f"{host.data.private_ip}:{service.metrics_port}",
    valkey_url=f"redis://{valkey_host}:{VALKEY_PORT}/0",
    trusted_networks=["127.0.0.0/8", "::1/128", settings.network.ip_range],
    greylisting=settings.mail.greylisting,
    outbound_limit=settings.mail.outbound_limit,
    service=service,
)
wheelhouse = build_wheelhouse(ROOT)

apt.packages(name="Python for the policy service's venv", packages=["python3", "python3-venv"])

files.directory(name="Wheel directory", path=WHEELS, mode="755")
uploads = [
    files.put(
        name=f"Wheel {wheel.name}",
        src=str(wheel),
        dest=f"{WHEELS}/{wheel.name}",
        mode="644",
    )
    for wheel in [*wheelhouse.dependency_wheels(), wheelhouse.mailstack_wheel]
]
uploads.append(
    files.put(
        name="Pinned dependencies",
        src=str(wheelhouse.requirements),
        dest=f"{WHEELS}/requirements.txt",
        mode="644",
    )
)
venv = pip.venv(name="The policy service's venv", path=VENV, python="python3")
installed = server.shell(
    name="Install the policy service into its venv",
    commands=[
        f"{VENV}/bin/pip install --quiet --no-index --find-links {WHEELS} --require-hashes "
        f"--requirement {WHEELS}/requirements.txt",
        f"{VENV}/bin/pip install --quiet --no-index --no-deps --force-reinstall "
        f"{WHEELS}/{wheelhouse.mailstack_wheel.name}",
    ],
    _if=any_changed(venv, *uploads),
)

files.directory(name="Configuration directory", path="/etc/mailstack", mode="755")
configured = files.put(
    name="Policy service configuration",
    src=io.StringIO(dump_config(config)),
    dest=CONFIG,
    mode="600",
)
unit = files.template(
    name="Policy service unit",
    src=str(ROOT / "templates/policyd/etc/systemd/system/mailstack-policyd.service.j2"),
    dest=f"/etc/systemd/system/{UNIT}",
    mode="644",
    venv=VENV,
    config=CONFIG,
)

systemd.daemon_reload(name="Reload systemd units", _if=unit.did_change)
systemd.service(name="Policy service running", service=UNIT, running=True, enabled=True)
systemd.service(
    name="Restart the policy service for its changes",
    service=UNIT,
    restarted=True,
    _if=any_changed(installed, configured, unit),
)
