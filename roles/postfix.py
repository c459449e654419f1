"""Postfix on the mx hosts: postscreen and smtpd for inbound mail, submission on 587 and 465
(mailstack.services.postfix). The queue lives on the node's queue volume; on an mx cluster the
cluster mounts it and runs the main instance (roles/pacemaker.py), and each node holds a
takeover instance for every other node's queue, which the cluster starts while that node is
dead."""

from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from mailstack.deploy.kit import checked, configure, install, name_hosts, packages, target
from mailstack.services import dovecot, pacemaker, postfix

deployment, me = target()

# Before the package, which would pick ids of its own: the queue's files belong to the same
# user and group on whichever node delivers them.
server.group(name="Create the postfix group", group="postfix", system=True, gid=postfix.GID)
server.group(
    name="Create the postdrop group", group="postdrop", system=True, gid=postfix.POSTDROP_GID
)
server.user(
    name="Create the postfix user",
    user="postfix",
    uid=postfix.UID,
    group="postfix",
    home="/var/spool/postfix",
    shell="/usr/sbin/nologin",
    system=True,
    create_home=False,
    # The queue directory (the queue volume's root) belongs to root.
    ensure_home=False,
)
packages("Postfix with PostgreSQL lookups", postfix.PACKAGES)
# LMTP, SASL and the quota check reach the mailstore pair by one name with both addresses;
# only the active node listens.
mailstore_name = name_hosts(
    dovecot.SERVICE_NAME, deployment.addresses("mailstore"), "the mailstore pair"
)
clustered = deployment.clustered("mx")
configure(
    postfix.UNIT,
    postfix.config_files(deployment, me),
    check=postfix.CHECK,
    watch=[mailstore_name],
    running=None if clustered else True,
)
if clustered:
    for other in postfix.takeover_hosts(deployment, me):
        files.directory(
            name=f"Create the mount point of {other.name}'s queue",
            path=pacemaker.takeover_queue(other.name),
            mode="755",
        )
        files.directory(
            name=f"Create the data directory of {other.name}'s takeover instance",
            path=postfix.takeover_data_directory(other.name),
            user="postfix",
            group="postfix",
            mode="700",
        )
    units = [install(config, "postfix") for config in postfix.unit_files()]
    systemd.daemon_reload(name="Load the takeover instances' units", _if=any_changed(*units))
    checked(
        "postfix-takeover",
        postfix.takeover_files(deployment, me),
        check=postfix.takeover_check(deployment, me),
    )
