"""etcd on the db nodes of a cluster: the store of Patroni's leader lock
(mailstack.services.etcd). The single profile has no cluster and no etcd."""

from mailstack.deploy.kit import configure, packages, target
from mailstack.services import etcd

deployment, me = target()

if deployment.db_clustered:
    packages("etcd", etcd.PACKAGES)
    configure(etcd.UNIT, etcd.config_files(deployment, me), check=etcd.CHECK)
