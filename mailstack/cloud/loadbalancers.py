"""Load balancers for SMTP, IMAP/POP3 and HTTP, with targets on the private network."""

from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud

from mailstack.cloud.network import PrivateNetwork
from mailstack.dnsrecords import https_hostnames
from mailstack.topology import HostPlan, LoadBalancerPlan, hosts_with_role

LOAD_BALANCER_TYPE = "lb11"


@dataclass(frozen=True)
class Service:
    port: int
    proxy_protocol: bool
    why: str


# What each load balancer forwards and to which role. PROXY protocol carries the real client
# address to Postfix (postscreen, smtpd) and Dovecot, which log it and rate-limit by it.
SERVICES: dict[str, tuple[str, list[Service]]] = {
    "smtp": (
        "mx",
        [
            Service(25, True, "inbound SMTP to postscreen"),
            Service(465, True, "submission with implicit TLS"),
            Service(587, True, "submission with STARTTLS"),
        ],
    ),
    "mailaccess": (
        "mailstore",
        [
            Service(143, True, "IMAP with STARTTLS"),
            Service(993, True, "IMAP with implicit TLS"),
            Service(110, True, "POP3 with STARTTLS"),
            Service(995, True, "POP3 with implicit TLS"),
            Service(4190, True, "ManageSieve"),
        ],
    ),
}
# The mail host names get their certificates by ACME http-01 on the nodes behind these.
ACME_HTTP = Service(80, False, "ACME http-01 challenges for the mail host names")
HEALTH_CHECK = {"interval": 15, "timeout": 10, "retries": 3}


def tcp_service(port: int, proxy_protocol: bool) -> dict:
    return {
        "protocol": "tcp",
        "listen_port": port,
        "destination_port": port,
        "proxyprotocol": proxy_protocol,
        "health_check": hcloud.LoadBalancerServiceHealthCheckArgs(
            protocol="tcp", port=port, **HEALTH_CHECK
        ),
    }


class LoadBalancers(pulumi.ComponentResource):
    def __init__(
        self,
        settings,
        hosts: list[HostPlan],
        plans: list[LoadBalancerPlan],
        network: PrivateNetwork,
        servers: dict[str, hcloud.Server],
        labels: dict[str, str],
        zones: list[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ):
        env = settings.environment.name
        self._zones = zones
        super().__init__("mailstack:cloud:LoadBalancers", env, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        acme_http = settings.tls.mode == "acme" and settings.tls.acme.challenge == "http-01"
        self.balancers: dict[str, hcloud.LoadBalancer] = {}
        for plan in plans:
            role, services = SERVICES.get(plan.purpose, ("web", []))
            balancer = hcloud.LoadBalancer(
                plan.name,
                name=plan.name,
                load_balancer_type=LOAD_BALANCER_TYPE,
                location=settings.environment.location,
                algorithm=hcloud.LoadBalancerAlgorithmArgs(
                    type="round_robin" if plan.purpose == "http" else "least_connections"
                ),
                labels=labels,
                opts=child,
            )
            self.balancers[plan.purpose] = balancer
            attachment = hcloud.LoadBalancerNetwork(
                f"{plan.name}-network",
                load_balancer_id=balancer.id.apply(int),
                subnet_id=network.subnet.id,
                ip=str(plan.private_ip),
                enable_public_interface=True,
                opts=child,
            )
            if plan.purpose == "http":
                self._http_services(settings, plan, balancer, labels, child)
            else:
                for service in services + ([ACME_HTTP] if acme_http else []):
                    hcloud.LoadBalancerService(
                        f"{plan.name}-{service.port}",
                        load_balancer_id=balancer.id,
                        **tcp_service(service.port, service.proxy_protocol),
                        opts=child,
                    )
            for host in hosts_with_role(hosts, role):
                hcloud.LoadBalancerTarget(
                    f"{plan.name}-{host.name}",
                    type="server",
                    load_balancer_id=balancer.id.apply(int),
                    server_id=servers[host.name].id.apply(int),
                    use_private_ip=True,
                    # A private-IP target needs the balancer in the network first.
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[attachment]),
                )
            hostname = {
                "smtp": settings.environment.hostname("mx"),
                "mailaccess": settings.environment.hostname("mail"),
                "http": settings.environment.hostname("panel"),
            }[plan.purpose]
            for kind, address in (("ipv4", balancer.ipv4), ("ipv6", balancer.ipv6)):
                hcloud.Rdns(
                    f"{plan.name}-ptr-{kind}",
                    load_balancer_id=balancer.id.apply(int),
                    ip_address=address,
                    dns_ptr=hostname,
                    opts=child,
                )
        self.register_outputs({})

    def _http_services(self, settings, plan, balancer, labels, child) -> None:
        """HTTPS for panel, webmail and MTA-STS.

        With the zones at Hetzner the balancer terminates TLS with a managed certificate and
        redirects port 80; otherwise Hetzner cannot validate a managed certificate, so TLS
        passes through to the web nodes, which hold ACME certificates of their own.
        """
        if settings.dns.managed_zone:
            certificate = hcloud.ManagedCertificate(
                f"{plan.name}-certificate",
                name=f"{plan.name}-certificate",
                domain_names=https_hostnames(settings),
                labels=labels,
                # Hetzner proves control of the names through the zones it hosts.
                opts=pulumi.ResourceOptions(parent=self, depends_on=self._zones),
            )
            hcloud.LoadBalancerService(
                f"{plan.name}-443",
                load_balancer_id=balancer.id,
                protocol="https",
                listen_port=443,
                destination_port=80,
                http=hcloud.LoadBalancerServiceHttpArgs(
                    certificates=[certificate.id.apply(int)],
                    redirect_http=True,
                    sticky_sessions=True,
                ),
                health_check=hcloud.LoadBalancerServiceHealthCheckArgs(
                    protocol="http",
                    port=80,
                    http=hcloud.LoadBalancerServiceHealthCheckHttpArgs(
                        path="/healthz", status_codes=["200"]
                    ),
                    **HEALTH_CHECK,
                ),
                opts=child,
            )
            return
        for port in (80, 443):
            hcloud.LoadBalancerService(
                f"{plan.name}-{port}",
                load_balancer_id=balancer.id,
                **tcp_service(port, True),
                opts=child,
            )
