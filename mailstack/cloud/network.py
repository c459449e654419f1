"""The private network every host and load balancer joins."""

import pulumi
import pulumi_hcloud as hcloud


class PrivateNetwork(pulumi.ComponentResource):
    def __init__(
        self, settings, labels: dict[str, str], opts: pulumi.ResourceOptions | None = None
    ):
        env = settings.environment.name
        super().__init__("mailstack:cloud:PrivateNetwork", env, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.network = hcloud.Network(
            f"{env}-net",
            name=env,
            ip_range=str(settings.network.ip_range),
            labels=labels,
            delete_protection=True,
            opts=child,
        )
        self.subnet = hcloud.NetworkSubnet(
            f"{env}-subnet",
            network_id=self.network.id.apply(int),
            type="cloud",
            network_zone=settings.environment.network_zone,
            ip_range=str(settings.network.subnet),
            opts=child,
        )
        self.register_outputs({"network_id": self.network.id, "subnet_id": self.subnet.id})
