"""Fault injection for tests: what happens to hosts and links in production, on demand.

Hosts are named as `Lab.host` accepts them ('lab-mx1' or 'mx1'). Partitions and packet loss are
kept in the lab's state, so they hold across commands and host restarts until lifted.
"""

from mailstack.lab import network


class Faults:
    """The fault primitives of one lab."""

    def __init__(self, lab):
        self.lab = lab

    def apply(self, state=None) -> None:
        """Make the fault table match the state (every partition and loss in force)."""
        state = state or self.lab.state()
        hosts = {host.name: host for host in self.lab.hosts(state)}
        network.apply_faults(
            self.lab.name,
            [(hosts[a].link, hosts[b].link) for a, b in state.partitions],
            {hosts[name].link: percent for name, percent in state.loss.items()},
        )

    def _update(self, **changes) -> None:
        state = self.lab.state().model_copy(update=changes)
        self.lab.save_state(state)
        self.apply(state)

    # --- the host as a whole ------------------------------------------------------------------

    def kill(self, host: str) -> None:
        """Power loss: every process of the host gets SIGKILL at once; its disk stays."""
        self.lab.kill_host(self.lab.host(host))

    def start(self, host: str, wait: bool = True) -> None:
        """Boot the host again from its disk as the kill left it."""
        target = self.lab.host(host)
        self.lab.start_host(target)
        if wait:
            self.lab.wait_ready([target], timeout=self.lab.state().lab.boot_timeout_seconds)

    def restart(self, host: str, wait: bool = True) -> None:
        """Kill the host abruptly and boot it again with its disk intact."""
        self.kill(host)
        self.start(host, wait)

    def freeze(self, host: str) -> None:
        """Stop the host's processes where they are (a hung machine): it answers nothing."""
        self.lab.cgroup(self.lab.host(host)).freeze(True)

    def thaw(self, host: str) -> None:
        """Let a frozen host run on from where it stopped."""
        self.lab.cgroup(self.lab.host(host)).freeze(False)

    # --- the network --------------------------------------------------------------------------

    def cut_link(self, host: str) -> None:
        """Unplug the host's cable: its bridge port goes down, nothing passes either way."""
        network.set_link(self.lab.host(host).link, up=False)

    def restore_link(self, host: str) -> None:
        network.set_link(self.lab.host(host).link, up=True)

    def partition(self, a: str, b: str) -> None:
        """Hosts a and b cannot reach each other; both still reach every other host."""
        pair = (self.lab.host(a).name, self.lab.host(b).name)
        partitions = [p for p in self.lab.state().partitions if set(p) != set(pair)]
        self._update(partitions=[*partitions, pair])

    def heal(self, a: str | None = None, b: str | None = None) -> None:
        """Lift the partition between a and b, or every partition when no pair is given."""
        if a is None or b is None:
            self._update(partitions=[])
            return
        pair = {self.lab.host(a).name, self.lab.host(b).name}
        self._update(partitions=[p for p in self.lab.state().partitions if set(p) != pair])

    def drop_packets(self, host: str, percent: int) -> None:
        """Drop this share of the host's packets, in both directions (0 lifts it)."""
        if not 0 <= percent <= 100:
            raise ValueError(f"percent must be between 0 and 100, not {percent}")
        name = self.lab.host(host).name
        loss = {k: v for k, v in self.lab.state().loss.items() if k != name}
        if percent:
            loss[name] = percent
        self._update(loss=loss)

    def clear(self) -> None:
        """Lift every fault: thaw, relink, heal, no loss (killed hosts stay down)."""
        for host in self.lab.hosts():
            if self.lab.cgroup(host).frozen():
                self.lab.cgroup(host).freeze(False)
            if network.link_exists(host.link) and not network.link_is_up(host.link):
                network.set_link(host.link, up=True)
        self._update(partitions=[], loss={})
