"""pyinfra entry point: applies each role to the hosts of its inventory groups, in this order.

`pyinfra inventory/lab.py deploy.py` (what `mailstack lab up --deploy` runs) or
`pyinfra inventory/hcloud.py deploy.py`. A new role is one line below.

Each role has its own line on purpose: pyinfra orders operations across hosts by the lines
that called them, so roles included from one line in a loop would interleave.
"""

from pyinfra import host, local


def on(*groups: str) -> bool:
    return bool(set(groups) & set(host.groups))


if on("internet"):
    local.include("roles/internet.py")
if on("loadbalancer"):
    local.include("roles/loadbalancer.py")
if on("mx", "mailstore", "web"):
    local.include("roles/certificates.py")
if on("db"):
    local.include("roles/db.py")
if on("db"):
    local.include("roles/valkey.py")
if on("mx", "web"):
    local.include("roles/venv.py")
if on("web"):
    local.include("roles/panel.py")
if on("mailstore"):
    local.include("roles/dovecot.py")
if on("mx"):
    local.include("roles/policyd.py")
if on("mx"):
    local.include("roles/postfix.py")
