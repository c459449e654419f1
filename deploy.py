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
    ("valkey", {"db"}),
    ("venv", {"mx", "web"}),
    ("panel", {"web"}),
    ("dovecot", {"mailstore"}),
    ("policyd", {"mx"}),
    ("clamav", {"mx"}),
    ("rspamd", {"mx"}),
    ("postfix", {"mx"}),
    # Last: a failed ACME order fails its host after the services are in place.
    ("acme", {"mx", "mailstore", "web"}),
]

# host.loop tells pyinfra which role an operation comes from: without it, operations on the same
# line of different role files count as one, which merges them and can order them in a cycle.
for role, groups in host.loop(ROLES):
    if groups & set(host.groups):
        local.include(f"roles/{role}.py")
