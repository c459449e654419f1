"""HAProxy on the lab's load-balancer host, doing what Hetzner's load balancers do in production
(lab only; mailstack.services.haproxy)."""

from mailstack.deploy.kit import configure, packages, target
from mailstack.services import haproxy

deployment, me = target()

packages("HAProxy", ["haproxy"])
configure(
    haproxy.UNIT,
    haproxy.config_files(deployment, me),
    check=haproxy.CHECK,
)
