"""DNS zones at Hetzner and the platform's records in them."""

import pulumi
import pulumi_hcloud as hcloud

from mailstack.dnsrecords import PublicAddresses, RecordSpec


def create_zones(settings, labels, opts: pulumi.ResourceOptions) -> dict[str, hcloud.Zone]:
    """One primary zone per mail domain, when the zones are managed at Hetzner."""
    if not settings.dns.managed_zone:
        return {}
    return {
        domain: hcloud.Zone(
            domain.replace(".", "-"),
            name=domain,
            mode="primary",
            ttl=settings.dns.ttl_seconds,
            delete_protection=True,
            labels=labels,
            opts=opts,
        )
        for domain in settings.environment.mail_domains
    }


def create_records(
    specs: list[RecordSpec],
    addresses: pulumi.Output,
    zones: dict[str, hcloud.Zone],
    opts: pulumi.ResourceOptions,
) -> list[hcloud.ZoneRrset]:
    """An RRset per record that falls inside a managed zone; the rest are only exported."""
    rrsets = []
    for spec in specs:
        if spec.zone not in zones:
            continue

        def records(resolved: PublicAddresses, spec: RecordSpec = spec) -> list:
            return [hcloud.ZoneRrsetRecordArgs(value=value) for value in spec.values(resolved)]

        rrsets.append(
            hcloud.ZoneRrset(
                f"{spec.fqdn}-{spec.type}",
                zone=zones[spec.zone].name,
                name=spec.name,
                type=spec.type,
                ttl=spec.ttl,
                records=addresses.apply(records),
                opts=opts,
            )
        )
    return rrsets
