"""Pacemaker and Corosync on the nodes of a failover cluster (the mailstore pair, the mx nodes):
membership with the quorum device's vote, the fence and volume agents, and the cluster's
configuration (mailstack.services.pacemaker, .corosync).

Runs after the services it manages are installed and configured (they are not started by their
own roles on these nodes). The cluster's configuration is applied from the role's first node
only when the live one differs (mailstack.failover.cib), so a converged cluster sees no change.
"""

import shlex

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import files, server, systemd

from mailstack.deploy.kit import configure, install, packages, target
from mailstack.failover import cib
from mailstack.services import corosync, pacemaker

deployment, me = target()
role = corosync.cluster_role(deployment, me)
STACK = (corosync.UNIT, corosync.QDEVICE_UNIT, pacemaker.UNIT)

# The single profile's host runs no cluster.
if role is not None:
    # Their maintainer scripts would start Corosync and Pacemaker on Debian's one-node
    # configuration; they start once this cluster's is in place.
    packages(
        "Pacemaker, Corosync and the cluster's agents",
        pacemaker.PACKAGES,
        held=STACK,
        # Their recommendations bring hundreds of packages (X libraries, every agent's tools).
        no_recommends=True,
    )

    files.directory(name="Create the configuration directory", path="/etc/mailstack", mode="755")
    files.directory(
        name="Create the resource agents' directory",
        path=pacemaker.VOLUME_AGENT_PATH.rsplit("/", 1)[0],
        mode="755",
    )
    for config in pacemaker.config_files(deployment, me):
        install(config, "cluster")

    configure(corosync.UNIT, corosync.config_files(deployment, me), check=corosync.CHECK)
    configure(
        corosync.QDEVICE_UNIT, corosync.qdevice_files(deployment, me), check=corosync.QDEVICE_CHECK
    )
    systemd.service(name="Run Pacemaker", service=pacemaker.UNIT, running=True, enabled=True)

    if me.name == deployment.first(role).name:
        wanted = pacemaker.cib_file(deployment, role).render()
        live = host.get_fact(Command, "cibadmin --query 2>/dev/null || true")
        if cib.differs(live, wanted):
            server.shell(
                name=f"Configure the {deployment.cluster_name(role)} cluster",
                commands=[
                    f"PYTHONPATH={shlex.quote(pacemaker.CODE)} python3 -m mailstack.failover.cib "
                    f"apply {pacemaker.CIB}"
                ],
            )
