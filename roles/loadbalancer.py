"""HAProxy doing what Hetzner's load balancers do in production (lab only).

TCP with PROXY protocol v2 to the mx hosts for SMTP (25, 465, 587), so Postfix sees the client's
address exactly as behind Hetzner; TCP to the mailstore hosts for IMAP and POP3; HTTP to the web
hosts on 80 and TCP pass-through on 443. Every backend server is health-checked; a backend whose
hosts run nothing yet just shows as down.
"""

from pyinfra import host, inventory
from pyinfra.operations import apt, files, systemd
from pyinfra.operations.util import any_changed

from mailstack.deploying import group_hosts, settings
from mailstack.topology import balanced_services, plan_load_balancers

config = settings(host)
frontends = []
for balancer in plan_load_balancers(config):
    role, services = balanced_services(config, balancer.purpose)
    frontends.append(
        {
            "purpose": balancer.purpose,
            "address": str(balancer.private_ip),
            "services": services,
            "servers": group_hosts(inventory, role),
        }
    )

apt.packages(name="Install HAProxy", packages=["haproxy"], update=True, cache_time=3600)

haproxy_cfg = files.template(
    name="Configure the load balancers",
    src="templates/loadbalancer/etc/haproxy/haproxy.cfg.j2",
    dest="/etc/haproxy/haproxy.cfg",
    mode="644",
    frontends=frontends,
)

systemd.service(name="Run HAProxy", service="haproxy", running=True, enabled=True)
systemd.service(
    name="Reload HAProxy for its new configuration",
    service="haproxy",
    reloaded=True,
    _if=any_changed(haproxy_cfg),
)
