"""Public firewall rules per role.

Everything a role serves reaches it through a load balancer over the private network, which
Hetzner Cloud firewalls do not filter. So the public side of every host opens only SSH from the
admin networks and ICMP (path MTU discovery and diagnostics); SMTP, IMAP, HTTP and the database
never answer on a host's public address. On the private network each host's own firewall
(mailstack.services.firewall, deployed by roles/firewall.py) lets each port's clients alone in.
"""

from dataclasses import dataclass

from mailstack.settings.topology import Role


@dataclass(frozen=True)
class Rule:
    protocol: str
    port: str | None
    source_ips: tuple[str, ...]
    description: str


ANYWHERE = ("0.0.0.0/0", "::/0")


def public_rules(role: Role, settings) -> list[Rule]:
    """Inbound rules for the public interfaces of hosts with this role."""
    admin = tuple(str(cidr) for cidr in settings.environment.admin_cidrs)
    return [
        Rule("tcp", "22", admin, f"SSH to {role} hosts from the admin networks"),
        Rule("icmp", None, ANYWHERE, "ICMP for path MTU discovery and diagnostics"),
    ]
