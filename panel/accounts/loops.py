"""Forwarding loops, refused when they are made.

Postfix expands virtual aliases recursively: a forwarding's targets are expanded again, an
address of a hosted domain that is neither a mailbox nor a forwarding falls to the domain's
catch-all, and an address that maps to itself (a mailbox, or a forwarding keeping a copy)
ends there. A cycle (a -> b -> a, of any length, through forwardings and catch-alls) makes
Postfix defer the whole message for every recipient ("Alias expansion error"), so no change
that closes one is stored. Disabled forwardings count: enabling one must not close a loop.
"""

from collections.abc import Mapping

from django.core.exceptions import ValidationError


def _catch_all_node(domain: str) -> str:
    return "@" + domain


class _Graph:
    """Edges of the alias expansion as the account data would be with the pending changes."""

    def __init__(self, forwardings: Mapping[str, list[str]], catch_alls: Mapping[str, str]):
        self.forwardings = {a.lower(): [t.lower() for t in ts] for a, ts in forwardings.items()}
        self.catch_alls = {d.lower(): c.lower() for d, c in catch_alls.items()}

    def targets(self, node: str) -> list[str]:
        from accounts.models import Domain, Forwarding, Mailbox

        if node.startswith("@"):
            domain = node[1:]
            if domain in self.catch_alls:
                target = self.catch_alls[domain]
            else:
                target = (
                    Domain.objects.filter(name=domain).values_list("catch_all", flat=True).first()
                )
            return [target.lower()] if target else []
        if node in self.forwardings:
            found = self.forwardings[node]
        else:
            found = list(
                Forwarding.objects.filter(address=node).values_list("targets__address", flat=True)
            )
            found = [t.lower() for t in found if t]
            if not found and Mailbox.objects.filter(address=node).exists():
                return []
            if not found and not Forwarding.objects.filter(address=node).exists():
                domain = node.rpartition("@")[2]
                hosted = domain in self.catch_alls or Domain.objects.filter(name=domain).exists()
                return [_catch_all_node(domain)] if hosted else []
        # Mapping to itself ends the expansion (a kept copy), it is no loop.
        return [t for t in found if t != node]


def check_no_loops(
    forwardings: Mapping[str, list[str]] | None = None, catch_alls: Mapping[str, str] | None = None
) -> None:
    """Raise ValidationError naming the cycle if the data, with these pending changes, loops.

    `forwardings`: {forwarding address: its new targets}; `catch_alls`: {domain: its new
    catch-all ('' for none)}. Only cycles through a changed node can be new, so the search
    starts from those.
    """
    forwardings = dict(forwardings or {})
    catch_alls = dict(catch_alls or {})
    graph = _Graph(forwardings, catch_alls)
    starts = [a.lower() for a in forwardings] + [_catch_all_node(d.lower()) for d in catch_alls]
    for start in starts:
        cycle = _find_cycle(graph, start)
        if cycle:
            shown = " → ".join(
                n if not n.startswith("@") else f"catch-all of {n[1:]}" for n in cycle
            )
            raise ValidationError(
                f"forwarding loop: {shown}; mail to these addresses could never be delivered"
            )


def _find_cycle(graph: _Graph, start: str, limit: int = 10_000) -> list[str] | None:
    """The path start -> ... -> start, if there is one (depth-first, each node once)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack and len(seen) < limit:
        node, path = stack.pop()
        for target in graph.targets(node):
            if target == start:
                return [*path, start]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return None
