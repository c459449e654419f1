"""The lab's Hetzner Cloud API against the official hcloud client and the failover client, fast.

The lab is at rest: its volumes exist (real sparse files, real loop devices) but no host runs,
so every server is off, and attach and detach work on powered-off servers as at Hetzner. What
volumes do inside running hosts, and the power actions, are in tests/lab/test_lab_volumes.py.
Needs root (loop devices).
"""

import subprocess
import threading

import pytest
import requests
from hcloud import APIException, Client

from mailstack.failover import hetzner
from mailstack.lab import report
from mailstack.lab.cloudapi import CloudApiServer
from mailstack.lab.cloudmodel import LabCloud
from mailstack.lab.lab import Lab
from mailstack.lab.pytest_plugin import lab_name_for_tests
from mailstack.lab.volumes import DEVICE_PREFIX, resource_id
from mailstack.settings.plan import plan_hosts
from mailstack.testing.cloud import attach_at_once

TOKEN = "lab-api-test-token"
MAIL = "lab-mail"


@pytest.fixture(scope="module")
def lab():
    lab = Lab(lab_name_for_tests("a"))
    lab.volumes.create()
    yield lab
    lab.down()
    assert report.leftovers(lab) == []


@pytest.fixture(scope="module")
def api(lab):
    server = CloudApiServer(LabCloud(lab, lab.stack_settings), TOKEN, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(api) -> Client:
    return Client(token=TOKEN, api_endpoint=api.endpoint, poll_interval=0.05)


@pytest.fixture
def failover(api, tmp_path):
    env_file = tmp_path / "hcloud.env"
    env_file.write_text(
        f"# the lab's API\nHCLOUD_ENDPOINT={api.endpoint}\nHCLOUD_TOKEN='{TOKEN}'\n"
    )
    return hetzner.connect(hetzner.CloudConfig.load(env_file))


def loops_of(lab, name: str) -> list[str]:
    path = lab.volumes.get(name).path
    listing = subprocess.run(
        ["losetup", "--noheadings", "--output", "NAME", "-j", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return listing.split()


def test_servers_are_the_platform_hosts_with_production_labels(lab, client):
    planned = {host.name: host for host in plan_hosts(lab.stack_settings)}
    servers = client.servers.get_all()
    assert sorted(server.name for server in servers) == sorted(planned)
    mailstore = client.servers.get_by_name("lab-mailstore1")
    assert mailstore.id == resource_id(lab.name, "server", "lab-mailstore1")
    assert mailstore.status == "off"
    assert mailstore.labels == {"mailstack-environment": "lab", "role-mailstore": "true"}
    assert mailstore.protection == {"delete": True, "rebuild": True}
    assert mailstore.private_net[0].ip == str(planned["lab-mailstore1"].private_ip)
    assert client.servers.get_by_name("lab-web1").protection["delete"] is False
    selected = {
        selector: sorted(s.name for s in client.servers.get_all(label_selector=selector))
        for selector in ("role-mx=true", "role-db", "!role-mx,role-mailstore", "role-web in (true)")
    }

    def of(role: str) -> list[str]:
        return sorted(name for name, host in planned.items() if role in host.roles)

    # The lab profile is production's: three db nodes (quorum), two of every other role.
    assert [len(of(role)) for role in ("mx", "mailstore", "db", "web")] == [2, 2, 3, 2]
    assert selected == {
        "role-mx=true": of("mx"),
        "role-db": of("db"),
        "!role-mx,role-mailstore": of("mailstore"),
        "role-web in (true)": of("web"),
    }
    assert client.servers.get_by_name("lab-nonexistent") is None


def test_volumes_are_production_s_attached_to_their_first_hosts(lab, client):
    volumes = {volume.name: volume for volume in client.volumes.get_all()}
    assert sorted(volumes) == [
        "lab-db1-data", "lab-db2-data", "lab-db3-data", MAIL, "lab-mx1-data", "lab-mx2-data"
    ]  # fmt: skip
    mail = volumes[MAIL]
    assert mail.server.id == client.servers.get_by_name("lab-mailstore1").id
    assert mail.linux_device == f"{DEVICE_PREFIX}{mail.id}"
    assert (mail.size, mail.format, mail.status) == (10, "ext4", "available")
    assert mail.location.name == lab.stack_settings.environment.location
    assert mail.id in [v.id for v in client.servers.get_by_name("lab-mailstore1").volumes]
    for volume in volumes.values():
        # Sparse: 10 GB as the server sees it, the formatted metadata on the machine's disk.
        assert lab.volumes.get(volume.name).path.stat().st_blocks * 512 < 2**28
        assert len(loops_of(lab, volume.name)) == 1


def test_requests_without_the_token_are_refused(api):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        answer = requests.get(f"{api.endpoint}/servers", headers=headers, timeout=5)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"
    with pytest.raises(APIException) as refused:
        Client(token="wrong", api_endpoint=api.endpoint).servers.get_all()
    assert refused.value.code == "unauthorized"


def test_unknown_things_are_not_found_and_bad_input_is_refused(api, client):
    with pytest.raises(APIException) as missing:
        client.servers.get_by_id(1)
    assert missing.value.code == "not_found"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for method, path, status, code in (
        ("GET", "/nothing", 404, "not_found"),
        ("GET", "/servers/abc", 400, "invalid_input"),
        ("POST", "/servers/1/actions/poweroff", 404, "not_found"),
        ("GET", "/actions/12345", 404, "not_found"),
    ):
        answer = requests.request(method, api.endpoint + path, headers=auth, timeout=5)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), path
    volume = client.volumes.get_by_name(MAIL)
    url = f"{api.endpoint}/volumes/{volume.id}/actions/attach"
    for body, code in ((b"{not json", "json_error"), (b'{"server": "x"}', "invalid_input")):
        answer = requests.post(url, data=body, headers=auth, timeout=5)
        assert (answer.status_code, answer.json()["error"]["code"]) == (400, code)


def test_a_volume_moves_with_actions_that_run_then_succeed(lab, api, client):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    volume = client.volumes.get_by_name(MAIL)
    answer = requests.post(f"{api.endpoint}/volumes/{volume.id}/actions/detach", headers=auth)
    assert answer.status_code == 201
    action = answer.json()["action"]
    assert (action["command"], action["status"], action["finished"]) == (
        "detach_volume",
        "running",
        None,
    )
    assert {"id": volume.id, "type": "volume"} in action["resources"]
    done = client.actions.get_by_id(action["id"])
    done.wait_until_finished()
    assert done.status == "success" and done.finished is not None
    assert client.volumes.get_by_name(MAIL).server is None
    assert loops_of(lab, MAIL) == []

    target = client.servers.get_by_name("lab-mailstore2")
    volume.attach(target, automount=False).wait_until_finished()
    assert client.volumes.get_by_name(MAIL).server.id == target.id
    assert len(loops_of(lab, MAIL)) == 1
    assert lab.volumes.attachments()[MAIL].server == "lab-mailstore2"
    client.volumes.get_by_name(MAIL).detach().wait_until_finished()
    volume.attach(client.servers.get_by_name("lab-mailstore1")).wait_until_finished()


def test_an_attached_volume_is_not_attached_again_nor_automounted(client):
    volume = client.volumes.get_by_name(MAIL)
    holder = volume.server.id
    for server in ("lab-mailstore1", "lab-mailstore2"):
        with pytest.raises(APIException) as refused:
            volume.attach(client.servers.get_by_name(server))
        assert refused.value.code == "volume_already_attached"
    assert client.volumes.get_by_name(MAIL).server.id == holder
    spare = client.volumes.get_by_name("lab-db1-data")
    spare.detach().wait_until_finished()
    with pytest.raises(APIException) as refused:
        spare.attach(client.servers.get_by_name("lab-db1"), automount=True)
    assert refused.value.code == "invalid_input"
    spare.attach(client.servers.get_by_name("lab-db1")).wait_until_finished()


def test_concurrent_attaches_attach_the_volume_once(lab, api, client):
    client.volumes.get_by_name(MAIL).detach().wait_until_finished()
    targets = ["lab-mailstore1", "lab-mailstore2"] * 4
    outcomes = attach_at_once(
        hetzner.CloudConfig(token=TOKEN, endpoint=api.endpoint), MAIL, targets
    )
    winners = [outcome for outcome in outcomes if outcome.startswith("lab-")]
    assert len(winners) == 1 and len(outcomes) == len(targets), outcomes
    assert set(outcomes) - set(winners) <= {"locked", "volume_already_attached"}
    assert lab.volumes.attachments()[MAIL].server == winners[0]
    assert len(loops_of(lab, MAIL)) == 1
    if winners[0] != "lab-mailstore1":
        hetzner.move_volume(client, MAIL, "lab-mailstore1")


def test_failover_client_moves_a_fenced_server_s_volume(lab, failover):
    assert hetzner.fence(failover, "lab-mailstore1", timeout=5) < 5  # already off
    seconds = hetzner.move_volume(failover, MAIL, "lab-mailstore2", timeout=10)
    assert seconds < 10
    (state,) = hetzner.volume_status(failover, MAIL)
    assert state.server == "lab-mailstore2"
    assert state.linux_device == lab.volumes.get(MAIL).linux_device
    # Moving it where it is changes nothing; back to the first host for the other tests.
    hetzner.move_volume(failover, MAIL, "lab-mailstore2")
    hetzner.move_volume(failover, MAIL, "lab-mailstore1")
    hetzner.detach_volume(failover, MAIL)
    assert hetzner.volume_status(failover, MAIL)[0].server is None
    hetzner.move_volume(failover, MAIL, "lab-mailstore1")
    assert {s.status for s in hetzner.server_status(failover)} == {"off"}


def test_failover_client_errors_say_what_did_not_happen(api, failover, tmp_path):
    with pytest.raises(hetzner.NotFound, match="no server named 'lab-mailstore9'"):
        hetzner.fence(failover, "lab-mailstore9")
    with pytest.raises(hetzner.NotFound, match="no volume named 'lab-nothing'"):
        hetzner.move_volume(failover, "lab-nothing", "lab-mailstore1")
    wrong = hetzner.connect(hetzner.CloudConfig(token="wrong", endpoint=api.endpoint))
    with pytest.raises(hetzner.ApiFailure, match="unauthorized"):
        hetzner.volume_status(wrong)
    nobody = hetzner.connect(hetzner.CloudConfig(token=TOKEN, endpoint="http://127.0.0.1:9/v1"))
    with pytest.raises(hetzner.ApiFailure, match="cannot reach the API"):
        hetzner.server_status(nobody)
