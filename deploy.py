"""pyinfra entry point: applies each role to the hosts of its inventory group, in this order.

`pyinfra inventory/lab.py deploy.py` (what `mailstack lab up --deploy` runs) or with the Hetzner
inventory. A new role is one line below: its file in roles/ and the groups it applies to.
"""

from pyinfra import host, local

ROLES = [
    # (role file in roles/, inventory groups it applies to)
    ("internet", {"internet"}),
    ("loadbalancer", {"loadbalancer"}),
    ("certificates", {"mx", "mailstore", "web"}),
    ("db", {"db"}),
    ("dovecot", {"mailstore"}),
    ("postfix", {"mx"}),
]

for role, groups in ROLES:
    if groups & set(host.groups):
        local.include(f"roles/{role}.py")
