"""Test helpers for the Hetzner Cloud API (Hetzner's or the lab's)."""

import threading

from hcloud import APIException

from mailstack.failover import hetzner


def attach_at_once(config: hetzner.CloudConfig, volume: str, targets: list[str]) -> list[str]:
    """Attach the volume to every target server at the same moment, each attempt from a client
    of its own; per attempt, the server it attached the volume to or the API's error code."""
    barrier = threading.Barrier(len(targets))
    outcomes: list[str] = []

    def attach(target: str) -> None:
        client = hetzner.connect(config)
        bound = client.volumes.get_by_name(volume)
        server = client.servers.get_by_name(target)
        barrier.wait()
        try:
            bound.attach(server, automount=False).wait_until_finished()
            outcomes.append(target)
        except APIException as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=attach, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes
