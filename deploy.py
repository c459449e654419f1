"""pyinfra entry point: applies each role to the hosts of its inventory groups, in the order of
mailstack.deploy.roles.ROLES. Started by `mailstack deploy` (mailstack.deploy.runner), for the
lab or a Hetzner environment. A new role is its file in roles/ and one line in that list.
"""

from pyinfra import host, local
from pyinfra.operations import server

from mailstack.deploy.roles import ROLES, SHARED_SERVICES_LAST_ROLE

# host.loop tells pyinfra which role an operation comes from: without it, operations on the same
# line of different role files count as one, which merges them and can order them in a cycle.
for role, groups in host.loop(ROLES):
    if groups & set(host.groups):
        local.include(f"roles/{role}.py")
    if role == SHARED_SERVICES_LAST_ROLE:
        # pyinfra orders operations per host; one operation every host runs, from the same
        # line, is a point all hosts pass together: the shared services (the database and
        # Valkey clusters) are started before any role that uses them begins. It changes nothing.
        server.shell(
            name="Shared services started: the roles that use them follow",
            commands=["true"],
            _if=lambda: False,
        )
