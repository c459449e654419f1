"""corosync-qnetd on the first db node: the quorum device every failover cluster asks for its
third vote (mailstack.services.qnetd), on the private address, TLS with client certificates."""

from mailstack.deploy.kit import configure, packages, target
from mailstack.services import qnetd

deployment, me = target()

# Only where some role runs a cluster, and on the one host that answers for them all.
if deployment.cluster_roles and deployment.quorum_device_host.name == me.name:
    packages(
        "corosync-qnetd and NSS tools", ["corosync-qnetd", "libnss3-tools"], no_recommends=True
    )
    configure(qnetd.UNIT, qnetd.config_files(deployment, me), check=qnetd.CHECK)
