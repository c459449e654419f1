"""pyinfra entry point: applies each role to the hosts of its inventory group, in this order.

`pyinfra inventory/lab.py deploy.py` (what `mailstack lab up --deploy` runs) or with the Hetzner
inventory. A new role is one line below: its file in roles/ and the group it applies to.
"""

from pyinfra import host, local

ROLES = [
    # (role file in roles/, inventory group)
    ("internet", "internet"),
    ("loadbalancer", "loadbalancer"),
]

for role, group in ROLES:
    if group in host.groups:
        local.include(f"roles/{role}.py")
