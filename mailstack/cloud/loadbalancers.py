"""Load balancers for SMTP, IMAP/POP3 and HTTP, with targets on the private network."""

import pulumi
import pulumi_hcloud as hcloud

from mailstack.cloud.network import PrivateNetwork
from mailstack.dnsrecords import https_hostnames
from mailstack.settings.plan import HostPlan, LoadBalancerPlan, hosts_with_role
from mailstack.topology import HTTPS_TERMINATED, balanced_services

LOAD_BALANCER_TYPE = "lb11"


def health_check(settings) -> dict:
    """How often and how patiently every balancer checks its targets (settings.failover): a dead
    node stops getting connections, and the node that took over starts getting them, within
    interval x retries."""
    failover = settings.failover
    return {
        "interval": failover.balancer_check_interval_seconds,
        "timeout": failover.balancer_check_timeout_seconds,
        "retries": failover.balancer_check_retries,
    }


def tcp_service(settings, port: int, proxy_protocol: bool) -> dict:
    return {
        "protocol": "tcp",
        "listen_port": port,
        "destination_port": port,
        "proxyprotocol": proxy_protocol,
        "health_check": hcloud.LoadBalancerServiceHealthCheckArgs(
            protocol="tcp", port=port, **health_check(settings)
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
        self.balancers: dict[str, hcloud.LoadBalancer] = {}
        for plan in plans:
            role, services = balanced_services(settings, plan.purpose)
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
            if plan.purpose == "http" and settings.dns.managed_zone:
                self._https_service(settings, plan, balancer, labels)
            for service in services:
                hcloud.LoadBalancerService(
                    f"{plan.name}-{service.port}",
                    load_balancer_id=balancer.id,
                    **tcp_service(settings, service.port, service.proxy_protocol),
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

    def _https_service(self, settings, plan, balancer, labels) -> None:
        """HTTPS for panel, webmail and MTA-STS, terminated here with a managed certificate.

        Only when the zones are at Hetzner, which validates the certificate through them;
        otherwise HTTP and HTTPS pass through to the web nodes (topology.HTTP_PASSTHROUGH).
        """
        child = pulumi.ResourceOptions(parent=self)
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
            destination_port=HTTPS_TERMINATED.port,
            http=hcloud.LoadBalancerServiceHttpArgs(
                certificates=[certificate.id.apply(int)],
                redirect_http=True,
                sticky_sessions=True,
            ),
            health_check=hcloud.LoadBalancerServiceHealthCheckArgs(
                protocol="http",
                port=HTTPS_TERMINATED.port,
                http=hcloud.LoadBalancerServiceHealthCheckHttpArgs(
                    path="/healthz", status_codes=["200"]
                ),
                **health_check(settings),
            ),
            opts=child,
        )
