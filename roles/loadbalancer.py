"""HAProxy doing what Hetzner's load balancers do in production (lab only).

TCP with PROXY protocol v2 to the mx hosts for SMTP (25, 465, 587), so Postfix sees the client's
address exactly as behind Hetzner; TCP to the mailstore hosts for IMAP and POP3; HTTP to the web
hosts on 80 and TCP pass-through on 443. Every backend server is health-checked; a backend whose
hosts run nothing yet just shows as down.
"""

from pyinfra import host, inventory
from pyinfra.operations import apt, files, systemd

from mailstack.deploying import group_hosts, settings
from mailstack.topology import plan_load_balancers

balancers = {lb.purpose: str(lb.private_ip) for lb in plan_load_balancers(settings(host))}

apt.packages(name="Install HAProxy", packages=["haproxy"], update=True, cache_time=3600)

config = files.template(
    name="Configure the load balancers",
    src="templates/loadbalancer/etc/haproxy/haproxy.cfg.j2",
    dest="/etc/haproxy/haproxy.cfg",
    mode="644",
    balancers=balancers,
    mx=group_hosts(inventory, "mx"),
    mailstore=group_hosts(inventory, "mailstore"),
    web=group_hosts(inventory, "web"),
)

systemd.service(
    name="Run HAProxy",
    service="haproxy",
    running=True,
    enabled=True,
    reloaded=config.changed,
)
