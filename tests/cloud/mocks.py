"""Runs the Pulumi program under the SDK's mock runtime and records every resource's inputs."""

import asyncio
import ipaddress
from dataclasses import dataclass, field

import pulumi

from mailstack.cloud.program import build


@dataclass
class Resource:
    type: str
    name: str
    inputs: dict
    id: str


@dataclass
class MockHetzner(pulumi.runtime.Mocks):
    """Answers like Hetzner would: numeric IDs and addresses from the documentation ranges."""

    resources: list[Resource] = field(default_factory=list)
    _counter: int = 0

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self._counter += 1
        resource_id = str(1000 + self._counter)
        state = dict(args.inputs)
        ipv4 = str(ipaddress.IPv4Address("203.0.113.0") + self._counter)
        ipv6 = str(ipaddress.IPv6Address("2001:db8::") + (self._counter << 64) + 1)
        if args.typ == "hcloud:index/server:Server":
            state.update(ipv4_address=ipv4, ipv6_address=ipv6, ipv6Address=ipv6, ipv4Address=ipv4)
        elif args.typ == "hcloud:index/loadBalancer:LoadBalancer":
            state.update(ipv4=ipv4, ipv6=ipv6)
        elif args.typ == "hcloud:index/volume:Volume":
            # Hetzner's stable device path of a volume in its server.
            state.update(linux_device=f"/dev/disk/by-id/scsi-0HC_Volume_{resource_id}")
        elif args.typ == "hcloud:index/primaryIp:PrimaryIp":
            state.update(ip_address=ipv4 if args.inputs.get("type") == "ipv4" else ipv6)
        self.resources.append(Resource(args.typ, args.name, dict(args.inputs), resource_id))
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}

    def of_type(self, short: str) -> list[Resource]:
        """Resources by short type name, e.g. 'Server' or 'LoadBalancerService'."""
        return [r for r in self.resources if r.type.rsplit(":", 1)[1] == short]

    def named(self, name: str) -> Resource:
        return next(r for r in self.resources if r.name == name)


@dataclass
class Built:
    mocks: MockHetzner
    options: dict[str, pulumi.ResourceOptions]
    """Resource options by resource name (the mock runtime does not see them)."""
    inventory: dict
    load_balancers: dict
    dns_records: list
    failover_api_token: str | None
    failover_token_is_secret: bool | None


FAILOVER_TOKEN = "failover-token-under-mocks"


def build_under_mocks(
    settings, stack: str, dkim_keys=(), failover_api_token=FAILOVER_TOKEN
) -> Built:
    mocks = MockHetzner()
    pulumi.runtime.set_mocks(mocks, project="mailstack", stack=stack, preview=False)
    outputs: dict = {}
    options: dict[str, pulumi.ResourceOptions] = {}
    original_init = pulumi.CustomResource.__init__

    def recording_init(self, t, name, props=None, opts=None, *args, **kwargs):
        options[name] = opts or pulumi.ResourceOptions()
        original_init(self, t, name, props, opts, *args, **kwargs)

    @pulumi.runtime.test
    def program():
        platform = build(settings, stack, dkim_keys, failover_api_token)
        token = platform.failover_api_token
        if token is not None:
            outputs["token_secret"] = asyncio.ensure_future(token.is_secret())
        return pulumi.Output.all(
            platform.inventory, platform.load_balancers, platform.dns_records, token
        ).apply(
            lambda values: outputs.update(zip(("inv", "lb", "dns", "token"), values, strict=True))
        )

    pulumi.CustomResource.__init__ = recording_init
    try:
        program()
    finally:
        pulumi.CustomResource.__init__ = original_init
    secret = outputs.get("token_secret")
    return Built(
        mocks,
        options,
        outputs["inv"],
        outputs["lb"],
        outputs["dns"],
        outputs["token"],
        secret.result() if secret is not None else None,
    )
