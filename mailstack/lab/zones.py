"""The DNS zones the lab's internet host serves: what public DNS holds for the platform in
production, plus the foreign peer's domain, the test DNSBL and reverse DNS for the lab range."""

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from mailstack.dkim import DkimKey
from mailstack.dnsrecords import AddressPair, PublicAddresses, plan_records, txt
from mailstack.settings.plan import plan_hosts, plan_load_balancers

REFUSED_QUERY_ADDRESS = IPv4Address("192.0.2.254")
"""A client address (TEST-NET-1) the lab's DNS blocklist answers with an error code for."""


@dataclass(frozen=True)
class Record:
    name: str
    """Absolute name without the trailing dot."""
    type: str
    value: str


@dataclass(frozen=True)
class Zone:
    name: str
    records: tuple[Record, ...]

    @property
    def serial(self) -> int:
        """Changes exactly when the records change, so redeploying the same zone is a no-op."""
        text = "\n".join(f"{r.name} {r.type} {r.value}" for r in self.records)
        return zlib.crc32(text.encode()) % 2**31 + 1

    @property
    def origin(self) -> str:
        """The zone's absolute name ('.' for the root)."""
        return f"{self.name}." if self.name else "."

    @property
    def file_name(self) -> str:
        return f"{self.name or 'root'}.zone"

    def relative(self, name: str) -> str:
        return "@" if name == self.name else name.removesuffix(f".{self.name}")


def lab_zones(settings, state, dkim_keys: Sequence[DkimKey] = ()) -> list[Zone]:
    """Every zone with its records, from the (lab's effective) settings, the lab's state and the
    mail domains' DKIM keys.

    The platform's own records are production's (`mailstack.dnsrecords.plan_records`), with the
    lab's private addresses where production has public ones.
    """
    env = settings.environment
    lab = state.lab
    hosts = plan_hosts(settings)
    balancers = {lb.purpose: lb.private_ip for lb in plan_load_balancers(settings)}
    addresses = PublicAddresses(
        hosts={host.name: AddressPair(ipv4=str(host.private_ip)) for host in hosts},
        load_balancers={
            purpose: AddressPair(ipv4=str(address)) for purpose, address in balancers.items()
        },
        sending_hosts=tuple(host.name for host in hosts if "mx" in host.roles),
    )
    records = [
        Record(spec.fqdn, spec.type, value)
        for spec in plan_records(settings, {host.name: host.roles for host in hosts}, dkim_keys)
        for value in spec.values(addresses)
    ]
    # Reverse DNS as Hetzner's is set: hosts by their own name, load balancers by their service.
    ptr: dict[IPv4Address, str] = {host.private_ip: env.host_fqdn(host.name) for host in hosts}
    for purpose, service in (("smtp", "mx"), ("mailaccess", "mail"), ("http", "panel")):
        ptr[balancers[purpose]] = env.hostname(service)

    def a(name: str, address: IPv4Address) -> None:
        records.append(Record(name, "A", str(address)))
        ptr.setdefault(address, name)

    records.append(Record(f"ns.{lab.services_domain}", "A", str(state.internet_address)))
    records.append(Record(f"acme.{lab.services_domain}", "A", str(state.internet_address)))
    # The lab's stand-in for a Storage Box: the backup target of its settings.
    records.append(Record(f"storage.{lab.services_domain}", "A", str(state.internet_address)))

    # Resellers point their own panel and webmail names at the platform's HTTP balancer.
    records.append(Record(f"*.{lab.reseller_zone}", "A", str(balancers["http"])))

    peer = lab.peer_domain
    records.append(Record(peer, "MX", f"10 mx.{peer}."))
    # The peer provider sends from the internet host's addresses and from the machine running the
    # lab (whose tests speak SMTP as one of the peer's hosts); nothing else may use its name.
    spf = f"v=spf1 ip4:{state.internet_address} ip4:{state.listed_address} ip4:{state.gateway} -all"
    records.append(Record(peer, "TXT", txt(spf)))
    a(f"mx.{peer}", state.internet_address)
    a(f"spam.{peer}", state.listed_address)

    # RFC 5782: a DNSBL lists 127.0.0.2 as its test entry; the lab lists one address of its own.
    for listed in (IPv4Address("127.0.0.2"), state.listed_address):
        name = f"{listed.reverse_pointer.removesuffix('.in-addr.arpa')}.{lab.dnsbl_zone}"
        records.append(Record(name, "A", "127.0.0.2"))
        records.append(Record(name, "TXT", txt("listed by the mailstack lab test DNSBL")))
    # An address whose query the list refuses, as Spamhaus answers queries from public
    # resolvers: an error answer, not a listing.
    refused = f"{REFUSED_QUERY_ADDRESS.reverse_pointer.removesuffix('.in-addr.arpa')}"
    records.append(Record(f"{refused}.{lab.dnsbl_zone}", "A", "127.255.255.254"))
    # Domain lists are asked for a link's domain under their zone.
    records.append(Record(f"{lab.listed_link_domain}.{lab.dnsbl_zone}", "A", "127.0.0.2"))

    reverse_zone = ".".join(reversed(str(state.subnet.network_address).split(".")[:3]))
    reverse_zone += ".in-addr.arpa"
    for address, name in sorted(ptr.items()):
        records.append(Record(address.reverse_pointer, "PTR", f"{name}."))

    zone_names = [
        *env.mail_domains,
        lab.services_domain,
        lab.reseller_zone,
        peer,
        lab.dnsbl_zone,
        reverse_zone,
    ]
    zone_names = list(dict.fromkeys(zone_names))
    by_zone: dict[str, list[Record]] = {name: [] for name in zone_names}
    for record in records:
        # A name belongs to the longest zone it ends in; names under no served zone are dropped.
        owners = [z for z in zone_names if record.name == z or record.name.endswith(f".{z}")]
        if owners:
            by_zone[max(owners, key=len)].append(record)
    # The root, empty: any other name does not exist (NXDOMAIN), as on the internet, instead of
    # a refused query that resolvers report as a failure.
    return [Zone(name, tuple(by_zone[name])) for name in zone_names] + [Zone("", ())]
