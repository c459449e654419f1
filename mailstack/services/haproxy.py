"""HAProxy doing what Hetzner's load balancers do in production (lab only).

TCP with PROXY protocol v2 to the mx hosts for SMTP (25, 465, 587), so Postfix sees the client's
address exactly as behind Hetzner; TCP to the mailstore hosts for IMAP and POP3; HTTP to the web
hosts on 80 and TCP pass-through on 443. Every backend server is health-checked; a backend whose
hosts run nothing yet just shows as down.
"""

from mailstack.deploy.configfile import ConfigFile
from mailstack.topology import balanced_services

UNIT = "haproxy"
CHECK = "haproxy -c -f /etc/haproxy/haproxy.cfg"
METRICS_PORT = 8405
"""HAProxy's own Prometheus exporter, on the balancer host's own address (not a balancer's)."""


def frontends(deployment) -> list[dict]:
    """Per balancer: its address, the services it forwards and the servers behind them."""
    result = []
    for balancer in deployment.inventory.load_balancers:
        role, services = balanced_services(deployment.settings, balancer.purpose)
        result.append(
            {
                "purpose": balancer.purpose,
                "address": str(balancer.private_ip),
                "services": services,
                "servers": [
                    {"name": h.name, "private_ip": str(h.private_ip)}
                    for h in deployment.hosts(role)
                ],
            }
        )
    return result


def config_files(deployment, host) -> list[ConfigFile]:
    failover = deployment.settings.failover
    return [
        ConfigFile.template(
            "haproxy",
            "/etc/haproxy/haproxy.cfg",
            effect="reload",
            frontends=frontends(deployment),
            metrics_address=f"{host.private_ip}:{METRICS_PORT}",
            # As Hetzner's balancers check (mailstack.cloud.loadbalancers.health_check).
            check_interval=failover.balancer_check_interval_seconds,
            check_timeout=failover.balancer_check_timeout_seconds,
            check_retries=failover.balancer_check_retries,
        )
    ]
