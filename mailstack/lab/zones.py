"""The DNS zones the lab's internet host serves: what public DNS holds for the platform in
production, plus the foreign peer's domain, the test DNSBL and reverse DNS for the lab range."""

import zlib
from dataclasses import dataclass
from ipaddress import IPv4Address

from mailstack.topology import plan_hosts, plan_load_balancers


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

    def relative(self, name: str) -> str:
        return "@" if name == self.name else name.removesuffix(f".{self.name}")


def reverse_name(address: IPv4Address) -> str:
    return address.reverse_pointer


def lab_zones(settings, state) -> list[Zone]:
    """Every zone with its records, from the (lab's effective) settings and the lab's state."""
    env = settings.environment
    lab = state.lab
    primary = env.primary_domain
    balancers = {lb.purpose: lb.private_ip for lb in plan_load_balancers(settings)}
    hosts = plan_hosts(settings)
    mx_addresses = [h.private_ip for h in hosts if "mx" in h.roles]
    records: list[Record] = []
    ptr: dict[IPv4Address, str] = {}

    def a(name: str, address: IPv4Address, reverse: bool = True) -> None:
        records.append(Record(name, "A", str(address)))
        if reverse:
            ptr.setdefault(address, name)

    spf_platform = " ".join(f"ip4:{address}" for address in mx_addresses)
    for domain in env.mail_domains:
        records.append(Record(domain, "MX", f"10 {env.hostname('mx')}."))
        records.append(Record(domain, "TXT", f'"v=spf1 {spf_platform} {settings.dns.spf_all}"'))
        records.append(
            Record(f"_dmarc.{domain}", "TXT", f'"v=DMARC1; p={settings.dns.dmarc_policy}"')
        )
    a(env.hostname("mx"), balancers["smtp"])
    a(env.hostname("submission"), balancers["smtp"], reverse=False)
    a(env.hostname("mail"), balancers["mailaccess"])
    a(env.hostname("panel"), balancers["http"])
    a(env.hostname("webmail"), balancers["http"], reverse=False)
    for domain in env.mail_domains:
        a(f"mta-sts.{domain}", balancers["http"], reverse=False)
    for host in hosts:
        a(f"{host.name}.{primary}", host.private_ip)

    a(f"ns.{lab.services_domain}", state.internet_address, reverse=False)
    a(f"acme.{lab.services_domain}", state.internet_address, reverse=False)

    peer = lab.peer_domain
    records.append(Record(peer, "MX", f"10 mx.{peer}."))
    records.append(
        Record(
            peer, "TXT", f'"v=spf1 ip4:{state.internet_address} ip4:{state.listed_address} -all"'
        )
    )
    a(f"mx.{peer}", state.internet_address)
    a(f"spam.{peer}", state.listed_address)

    # RFC 5782: a DNSBL lists 127.0.0.2 as its test entry; the lab lists one address of its own.
    for listed in (IPv4Address("127.0.0.2"), state.listed_address):
        name = f"{listed.reverse_pointer.removesuffix('.in-addr.arpa')}.{lab.dnsbl_zone}"
        records.append(Record(name, "A", "127.0.0.2"))
        records.append(Record(name, "TXT", '"listed by the mailstack lab test DNSBL"'))

    reverse_zone = ".".join(reversed(str(state.subnet.network_address).split(".")[:3]))
    reverse_zone += ".in-addr.arpa"
    for address, name in sorted(ptr.items()):
        records.append(Record(reverse_name(address), "PTR", f"{name}."))

    zone_names = [*env.mail_domains, lab.services_domain, peer, lab.dnsbl_zone, reverse_zone]
    zone_names = list(dict.fromkeys(zone_names))
    by_zone: dict[str, list[Record]] = {name: [] for name in zone_names}
    for record in records:
        # A name belongs to the longest zone it ends in; names under no served zone are dropped.
        owners = [z for z in zone_names if record.name == z or record.name.endswith(f".{z}")]
        if owners:
            by_zone[max(owners, key=len)].append(record)
    return [Zone(name, tuple(by_zone[name])) for name in zone_names]
