"""Who is never greylisted: trusted networks, allow-listed clients, senders and recipients."""

from dataclasses import dataclass
from importlib import resources
from ipaddress import IPv4Network, IPv6Network, ip_network

from mailstack.policyd.addresses import NetworkSet, domain_of

SHIPPED_LIST = "big_senders.txt"


def read_shipped_list() -> tuple[list[str], list[IPv4Network | IPv6Network]]:
    """The shipped list of big senders' pools: (host name suffixes, networks)."""
    text = resources.files("mailstack.policyd").joinpath("data", SHIPPED_LIST).read_text()
    suffixes, networks = [], []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip().lower()
        if not entry:
            continue
        if "/" in entry:
            networks.append(ip_network(entry))
        else:
            suffixes.append(entry.rstrip("."))
    return suffixes, networks


def _suffix_match(name: str, suffixes: frozenset[str]) -> bool:
    labels = name.rstrip(".").split(".")
    return any(".".join(labels[i:]) in suffixes for i in range(len(labels)))


@dataclass(frozen=True)
class Allowlist:
    networks: NetworkSet
    hostname_suffixes: frozenset[str]
    sender_domains: frozenset[str]
    recipients: frozenset[str]
    recipient_domains: frozenset[str]

    @classmethod
    def from_settings(cls, greylisting) -> "Allowlist":
        networks = list(greylisting.allow_client_networks)
        suffixes = list(greylisting.allow_client_hostname_suffixes)
        if greylisting.use_shipped_allowlist:
            shipped_suffixes, shipped_networks = read_shipped_list()
            suffixes += shipped_suffixes
            networks += shipped_networks
        recipients = [r.lower() for r in greylisting.allow_recipients]
        return cls(
            networks=NetworkSet(networks),
            hostname_suffixes=frozenset(suffixes),
            sender_domains=frozenset(greylisting.allow_sender_domains),
            recipients=frozenset(r for r in recipients if not r.startswith("@")),
            recipient_domains=frozenset(r[1:] for r in recipients if r.startswith("@")),
        )

    def reason(self, client: tuple[int, int], client_name: str, sender: str, recipient: str) -> str:
        """Why this request is allow-listed ('' if it is not); `client` from parse_address."""
        if client in self.networks:
            return "client network"
        # Postfix's client_name is "unknown" unless the reverse name resolves back to the client.
        if (
            self.hostname_suffixes
            and client_name != "unknown"
            and _suffix_match(client_name.lower(), self.hostname_suffixes)
        ):
            return "client host name"
        if self.sender_domains and _suffix_match(domain_of(sender), self.sender_domains):
            return "sender domain"
        if recipient in self.recipients or (
            self.recipient_domains and domain_of(recipient) in self.recipient_domains
        ):
            return "recipient"
        return ""
