"""Each fault primitive does what it says, on the deployed test lab."""

import shlex

import pytest
from lab_probes import host_reaches, host_reaches_within, machine_reaches, ssh_answers

from mailstack.testing.clusters import clusters_aside

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module", autouse=True)
def _clusters_aside(lab):
    """Killed, frozen and half-cut nodes are what the failover clusters act on: on a deployed
    lab they stand aside while these tests check the lab's own fault primitives."""
    with clusters_aside(lab):
        yield


def test_kill_makes_host_unreachable_and_restart_keeps_its_disk(lab, faults):
    mx1 = lab.host("mx1")
    assert lab.ssh(mx1, "echo survived > /root/marker && sync").returncode == 0

    faults.kill("mx1")
    assert not lab.running(mx1)
    assert not machine_reaches(mx1)
    assert host_reaches(lab, "mx2", "mx1") == 0

    faults.start("mx1")
    assert lab.ssh(mx1, "cat /root/marker").stdout.strip() == "survived"
    assert lab.ssh(mx1, "systemctl is-system-running --wait").stdout.strip() == "running"


def test_kill_is_abrupt(lab, faults):
    # An orderly shutdown would run ExecStop; SIGKILL to the whole host runs nothing.
    mx1 = lab.host("mx1")
    unit = (
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"
        "ExecStop=/bin/sh -c 'echo orderly > /root/stopped; sync'\n"
    )
    setup = (
        f"printf %s {shlex.quote(unit)} > /etc/systemd/system/stopwatch.service && rm -f /root/stopped && "
        "systemctl daemon-reload && systemctl start stopwatch"
    )
    assert lab.ssh(mx1, setup).returncode == 0
    faults.restart("mx1")
    assert lab.ssh(mx1, "test -e /root/stopped").returncode == 1


def test_freeze_makes_ssh_time_out_and_thaw_restores_it(lab, faults):
    faults.freeze("mx2")
    assert not ssh_answers(lab, "mx2", timeout=3)
    faults.thaw("mx2")
    assert ssh_answers(lab, "mx2", timeout=10)


def test_cut_link_isolates_the_host_and_restore_reconnects_it(lab, faults):
    db1 = lab.host("db1")
    faults.cut_link("db1")
    assert not machine_reaches(db1)
    assert host_reaches(lab, "web1", "db1") == 0
    faults.restore_link("db1")
    assert machine_reaches(db1, timeout=5)
    assert host_reaches_within(lab, "web1", "db1", seconds=10)


def test_partition_cuts_exactly_the_pair(lab, faults):
    faults.partition("mx1", "mailstore1")
    assert host_reaches(lab, "mx1", "mailstore1") == 0
    assert host_reaches(lab, "mailstore1", "mx1") == 0
    # Both still reach everyone else, and the machine still reaches both.
    assert host_reaches(lab, "mx1", "mailstore2") == 1
    assert host_reaches(lab, "mailstore1", "mx2") == 1
    assert host_reaches(lab, "mx2", "mx1") == 1
    assert machine_reaches(lab.host("mx1")) and machine_reaches(lab.host("mailstore1"))

    faults.heal("mx1", "mailstore1")
    assert host_reaches_within(lab, "mx1", "mailstore1", seconds=10)


def test_partition_survives_a_restart_of_either_host(lab, faults):
    faults.partition("web1", "db1")
    faults.restart("db1")
    assert host_reaches(lab, "web1", "db1") == 0
    faults.heal()
    assert host_reaches_within(lab, "web1", "db1", seconds=10)


def test_drop_packets_drops_that_share(lab, faults):
    attempts = 40
    assert host_reaches(lab, "mx2", "mx1", attempts=attempts) == attempts

    faults.drop_packets("mx1", 100)
    assert not machine_reaches(lab.host("mx1"))

    # 50 % each way: a connection needs the SYN and the SYN-ACK through, so about a quarter
    # succeed (the 0.5 s timeout leaves no time for a retransmission).
    faults.drop_packets("mx1", 50)
    succeeded = host_reaches(lab, "mx2", "mx1", attempts=attempts)
    assert 1 <= succeeded <= 25, succeeded

    faults.drop_packets("mx1", 0)
    # The neighbour entry may have failed under the loss: let it resolve before counting.
    assert host_reaches_within(lab, "mx2", "mx1", seconds=10)
    assert host_reaches(lab, "mx2", "mx1", attempts=attempts) == attempts


def test_drop_packets_rejects_a_share_outside_0_to_100(lab, faults):
    with pytest.raises(ValueError, match="percent"):
        faults.drop_packets("mx1", 101)
