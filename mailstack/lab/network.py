"""The lab's network: one bridge per lab, a guard table that keeps lab traffic on the bridge, and
a bridge-family nft table that carries the injected faults (partitions, packet loss)."""

import json
from ipaddress import IPv4Address, IPv4Network, ip_network

from mailstack.lab.system import LabError, run


def table_name(lab: str) -> str:
    return f"mailstack_lab_{lab}"


def addresses_in_use(subnet: IPv4Network, bridge: str) -> list[str]:
    """What else on this machine already uses addresses of `subnet` (routes or addresses)."""
    users = []
    for route in json.loads(run("ip", "-j", "-4", "route", "show", "table", "all").stdout or "[]"):
        destination = route.get("dst", "")
        if destination in ("default", "") or route.get("dev") == bridge:
            continue
        try:
            network = ip_network(destination, strict=False)
        except ValueError:
            continue
        if network.version == 4 and network.overlaps(subnet) and network.prefixlen > 0:
            users.append(f"route {destination} on {route.get('dev', '?')}")
    for link in json.loads(run("ip", "-j", "-4", "addr", "show").stdout or "[]"):
        if link["ifname"] == bridge:
            continue
        for address in link.get("addr_info", []):
            if IPv4Address(address["local"]) in subnet:
                users.append(f"address {address['local']} on {link['ifname']}")
    return sorted(set(users))


def link_exists(name: str) -> bool:
    return run("ip", "link", "show", "dev", name, check=False).returncode == 0


def create_bridge(bridge: str, gateway: IPv4Address, subnet: IPv4Network) -> None:
    if link_exists(bridge):
        return
    busy = addresses_in_use(subnet, bridge)
    if busy:
        raise LabError(
            f"address range {subnet} is already in use ({'; '.join(busy)}): take the lab down "
            "that uses it, or give this lab another name (it then gets a free range)"
        )
    run("ip", "link", "add", bridge, "type", "bridge")
    run("ip", "addr", "add", f"{gateway}/{subnet.prefixlen}", "dev", bridge)
    run("ip", "link", "set", bridge, "up")


def delete_link(name: str) -> None:
    if link_exists(name):
        run("ip", "link", "delete", name)


def set_link(name: str, up: bool) -> None:
    run("ip", "link", "set", name, "up" if up else "down")


def link_is_up(name: str) -> bool:
    result = run("ip", "-j", "link", "show", "dev", name, check=False)
    if result.returncode != 0:
        return False
    return "UP" in json.loads(result.stdout)[0].get("flags", [])


def apply_guard(lab: str, bridge: str, ports: list[int]) -> None:
    """Hosts reach the machine only on `ports` (apt-cacher-ng, the cloud API), and nothing
    beyond the bridge."""
    table = table_name(lab)
    ruleset = f"""
table inet {table}
delete table inet {table}
table inet {table} {{
    chain input {{
        type filter hook input priority 0; policy accept;
        iifname "{bridge}" ct state established,related accept
        iifname "{bridge}" tcp dport {{ {", ".join(str(port) for port in ports)} }} accept
        iifname "{bridge}" meta l4proto icmp accept
        iifname "{bridge}" drop
    }}
    chain forward {{
        type filter hook forward priority 0; policy accept;
        iifname "{bridge}" oifname != "{bridge}" drop
        oifname "{bridge}" iifname != "{bridge}" drop
    }}
}}
"""
    run("nft", "-f", "-", input=ruleset)


def apply_faults(lab: str, partitions: list[tuple[str, str]], loss: dict[str, int]) -> None:
    """Replace the lab's fault table with exactly these faults, in one transaction.

    Faults match bridge ports (a host's `vb-` link), so they hold for every address a host has
    and for ARP too. `partitions` holds pairs of links that cannot reach each other; `loss` maps a
    link to the percentage of its frames dropped, in both directions.
    """
    table = table_name(lab)
    forward = [
        f'iifname "{a}" oifname "{b}" drop\n        iifname "{b}" oifname "{a}" drop'
        for a, b in partitions
    ]

    def lossy(direction: str, link: str, percent: int) -> str:
        share = "" if percent >= 100 else f"numgen random mod 100 < {percent} "
        return f'{direction} "{link}" {share}drop'

    ingress = [lossy("iifname", link, percent) for link, percent in loss.items()]
    egress = [lossy("oifname", link, percent) for link, percent in loss.items()]

    def chain(name: str, hook: str, rules: list[str]) -> str:
        body = "\n        ".join(rules)
        return (
            f"    chain {name} {{\n        type filter hook {hook} priority 0; policy accept;\n"
            f"        {body}\n    }}\n"
        )

    ruleset = (
        f"table bridge {table}\ndelete table bridge {table}\ntable bridge {table} {{\n"
        + chain("partitions", "forward", forward)
        + chain("loss_in", "prerouting", ingress)
        + chain("loss_out", "postrouting", egress)
        + "}\n"
    )
    run("nft", "-f", "-", input=ruleset)


def delete_tables(lab: str) -> None:
    for family in ("inet", "bridge"):
        run("nft", "delete", "table", family, table_name(lab), check=False)


def tables_exist(lab: str) -> list[str]:
    listing = run("nft", "list", "tables").stdout.split("\n")
    return [line.strip() for line in listing if line.strip().endswith(" " + table_name(lab))]
