"""Prometheus and Alertmanager on the monitoring hosts (mailstack.services.monitoring), each
file checked by promtool or amtool before the service reloads it."""

from mailstack.deploy.kit import configure, name_hosts, packages, target
from mailstack.services import dovecot, monitoring

deployment, me = target()

# Without recommends: Prometheus would bring a node exporter of its own settings.
packages("Prometheus and Alertmanager", monitoring.PACKAGES, no_recommends=True)
# Alertmanager hands alerts to the mx hosts' listener by one name for all of them.
name_hosts(dovecot.MX_NAME, deployment.addresses("mx"), "the mx hosts for alerts")
configure(
    monitoring.PROMETHEUS_UNIT,
    monitoring.prometheus_files(deployment, me),
    check=monitoring.PROMETHEUS_CHECK,
)
configure(
    monitoring.ALERTMANAGER_UNIT,
    monitoring.alertmanager_files(deployment, me),
    check=monitoring.ALERTMANAGER_CHECK,
)
