"""Two labs at once: own bridge, own addresses, own faults, own lifetime."""

import pytest
from lab_probes import host_reaches, machine_reaches

from mailstack.lab import Lab, report
from mailstack.lab.pytest_plugin import lab_name_for_tests

pytestmark = pytest.mark.lab


def test_two_labs_do_not_interfere(lab):
    second = Lab(lab_name_for_tests("2"))
    try:
        second.up()
        first_state, second_state = lab.state(), second.state()
        assert first_state.subnet != second_state.subnet
        assert first_state.bridge != second_state.bridge
        # Same host names, different addresses; each inventory names its own.
        assert [h.name for h in lab.hosts()] == [h.name for h in second.hosts()]
        assert not {h.address for h in lab.hosts()} & {h.address for h in second.hosts()}
        assert {h.ssh_address for h in second.inventory().hosts} == {
            str(h.address) for h in second.hosts()
        }

        # A host of one lab cannot reach the other lab at all.
        other = lab.host("mx1").address
        result = second.ssh(
            second.host("mx1"),
            f"python3 -c \"import socket; socket.create_connection(('{other}', 22), timeout=1)\"",
        )
        assert result.returncode != 0

        # Faults stay in their lab.
        second.faults.kill("mx1")
        second.faults.partition("mx2", "db1")
        assert lab.running(lab.host("mx1")) and machine_reaches(lab.host("mx1"))
        assert host_reaches(lab, "mx2", "db1") == 1
        assert host_reaches(second, "mx2", "db1") == 0
    finally:
        second.down()
    assert report.leftovers(second) == []
    assert all(row["system"] == "running" for row in report.status(lab))
