"""A lab comes up with every host booted and reachable, and goes without a trace."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lab_probes import host_reaches

from mailstack.lab import Lab, LabError, report
from mailstack.lab.lab import DEFAULT_STACK_FILE
from mailstack.lab.pytest_plugin import lab_name_for_tests
from mailstack.lab.system import CGROUP_TOP, hierarchies

pytestmark = pytest.mark.lab


def stack_file(tmp_path: Path, **lab_settings) -> Path:
    """The lab stack with some lab-only settings changed."""
    document = yaml.safe_load(DEFAULT_STACK_FILE.read_text())
    document["config"]["mailstack:lab"].update(lab_settings)
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_up_is_idempotent_every_host_runs_and_down_leaves_nothing(tmp_path):
    lab = Lab(lab_name_for_tests("c"))
    try:
        inventory = lab.up()
        hosts = lab.hosts()
        assert {h.name for h in inventory.hosts} == {h.name for h in hosts}
        assert {g for h in inventory.hosts for g in h.roles} == {
            "mx",
            "mailstore",
            "db",
            "web",
            "loadbalancer",
            "internet",
        }
        for host in hosts:
            state = lab.ssh(host, "systemctl is-system-running --wait; systemctl --failed").stdout
            assert state.startswith("running"), f"{host.name}: {state}"
        # Hosts have their topology addresses and names, and reach each other.
        lb = lab.host("lb1")
        assert lab.ssh(lb, "hostname").stdout.strip() == lb.name
        addresses = lab.ssh(lb, "ip -4 -o addr show dev host0").stdout
        assert all(f"{a}/24" in addresses for a in lb.addresses)
        assert host_reaches(lab, "mx1", "internet") == 1

        # up again keeps what runs: same boot, same inventory.
        boot_id = lab.ssh(lab.host("mx1"), "cat /proc/sys/kernel/random/boot_id").stdout
        machine_id = lab.ssh(lab.host("mx1"), "cat /etc/machine-id").stdout
        assert lab.up() == inventory
        assert lab.ssh(lab.host("mx1"), "cat /proc/sys/kernel/random/boot_id").stdout == boot_id
        assert lab.ssh(lab.host("mx1"), "cat /etc/machine-id").stdout == machine_id

        # up also starts what stopped.
        lab.kill_host(lab.host("web1"))
        lab.up()
        assert lab.running(lab.host("web1"))
    finally:
        lab.down()
    assert report.leftovers(lab) == []
    # (No probing of the old addresses: with the bridge gone they would route off the machine.)
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    assert lab.bridge not in routes
    mounts = Path("/proc/self/mounts").read_text()
    assert f"/{lab.name}/" not in mounts
    assert not any((root / CGROUP_TOP / lab.name).exists() for root in hierarchies())
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert not any(h.link in links for h in hosts) and lab.bridge not in links
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert f"mailstack_lab_{lab.name}\n" not in tables


def test_down_of_a_lab_that_is_not_up_is_harmless():
    lab = Lab(lab_name_for_tests("n"))
    lab.down()
    assert report.leftovers(lab) == []


def test_host_that_does_not_boot_is_reported_with_its_console(tmp_path):
    lab = Lab(lab_name_for_tests("b"), stack_file(tmp_path, boot_timeout_seconds=20))
    try:
        lab.up()
        web1 = lab.host("web1")
        lab.kill_host(web1)
        init = lab.root(web1) / "usr/lib/systemd/systemd"
        init.unlink()
        init.write_text("#!/bin/sh\necho 'init is broken on purpose'\nexit 1\n")
        init.chmod(0o755)
        with pytest.raises(LabError) as error:
            lab.faults.start("web1")
        message = str(error.value)
        assert "lab-web1 stopped while booting" in message
        assert "init is broken on purpose" in message
    finally:
        lab.down()
    assert report.leftovers(lab) == []


def test_address_range_in_use_is_refused(tmp_path):
    # A foreign interface holding an address of the range the lab would take.
    busy = lab_name_for_tests("x")
    stack = stack_file(tmp_path, default_name=busy)
    document = yaml.safe_load(stack.read_text())
    document["config"]["mailstack:settings"]["network"] = {
        "ip_range": "10.78.0.0/16",
        "subnet": "10.78.5.0/24",
    }
    document["config"]["mailstack:settings"]["environment"]["admin_cidrs"] = ["10.78.5.1/32"]
    stack.write_text(yaml.safe_dump(document))
    subprocess.run(["ip", "link", "add", "mslbusytest", "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", "10.78.5.9/24", "dev", "mslbusytest"], check=True)
        lab = Lab(busy, stack)
        with pytest.raises(LabError, match=r"address range 10\.78\.5\.0/24 is already in use"):
            lab.up()
        lab.down()
        assert report.leftovers(lab) == []
    finally:
        subprocess.run(["ip", "link", "del", "mslbusytest"], check=True)


def test_cli_status_ssh_and_errors(lab):
    mailstack = [sys.executable, "-m", "mailstack.cli", "lab", "--name", lab.name]
    status = subprocess.run([*mailstack, "status"], capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("running") == len(lab.hosts())
    ssh = subprocess.run(
        [*mailstack, "ssh", "internet", "hostname"], capture_output=True, text=True
    )
    assert ssh.stdout.strip() == lab.host("internet").name
    unknown = subprocess.run(
        [*mailstack, "ssh", "nosuchhost", "true"], capture_output=True, text=True
    )
    assert unknown.returncode == 1 and "no host 'nosuchhost'" in unknown.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "mailstack.cli", "lab", "--name", "Bad_Name", "status"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "lab name 'Bad_Name'" in bad.stderr


def test_a_lab_another_checkout_runs_is_refused(lab, tmp_path):
    owner = lab.owner_file.read_text()
    lab.owner_file.write_text(str(tmp_path))  # a checkout that exists, and the lab runs
    try:
        with pytest.raises(LabError, match=f"belongs to {tmp_path} and runs"):
            lab.up()
        with pytest.raises(LabError, match="belongs to"):
            lab.down()
    finally:
        lab.owner_file.write_text(owner)
    assert all(lab.running(host) for host in lab.hosts())


def test_a_stale_lab_of_another_checkout_is_taken_over(tmp_path):
    lab = Lab(lab_name_for_tests("s"))
    try:
        lab.up()
        mx1 = lab.host("mx1")
        assert lab.ssh(mx1, "touch /root/old-disk").returncode == 0
        lab.owner_file.write_text(str(tmp_path / "gone"))  # its checkout no longer exists
        lab.up()
        assert lab.owner_file.read_text() == str(lab.state_dir)
        assert lab.ssh(mx1, "test -e /root/old-disk").returncode == 1
    finally:
        lab.down()
    assert report.leftovers(lab) == []
