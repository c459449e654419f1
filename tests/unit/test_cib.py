"""The clusters' wanted configuration against a live CIB: what the deploy changes and what it
leaves alone (mailstack.failover.cib), on the CIBs the lab's stack renders."""

import contextlib
import copy
import subprocess
import tempfile
import xml.etree.ElementTree as ET

import pytest

from mailstack.deploy.deployment import Deployment
from mailstack.failover import cib
from mailstack.failover.hetzner import CloudConfig
from mailstack.lab.lab import DEFAULT_STACK_FILE
from mailstack.secrets import SecretStore
from mailstack.services import pacemaker
from mailstack.settings import load_stack_file
from mailstack.testing import trixie


@pytest.fixture(scope="module", params=["mailstore", "mx"])
def wanted(request, tmp_path_factory) -> str:
    settings = load_stack_file(DEFAULT_STACK_FILE)
    secrets = SecretStore(tmp_path_factory.mktemp("secrets") / "secrets.json")
    deployment = Deployment.planned(settings, secrets, "lab", CloudConfig(token="t"))
    return pacemaker.cib_file(deployment, request.param).render()


def as_live(wanted: str) -> ET.Element:
    """The wanted configuration as a running cluster holds it: Pacemaker's own properties,
    nodes with attributes, a status section, a version."""
    live = cib.parse(wanted)
    live.set("epoch", "7")
    properties = live.find("configuration/crm_config/cluster_property_set")
    ET.SubElement(
        properties,
        "nvpair",
        id="cib-bootstrap-options-dc-version",
        name="dc-version",
        value="3.0.0-2",
    )
    nodes = live.find("configuration/nodes")
    node = ET.SubElement(nodes, "node", id="1", uname="lab-mailstore1")
    attributes = ET.SubElement(node, "instance_attributes", id="nodes-1")
    ET.SubElement(attributes, "nvpair", id="nodes-1-standby", name="standby", value="on")
    ET.SubElement(live.find("status"), "node_state", id="1", uname="lab-mailstore1")
    return live


def first_resource(live: ET.Element) -> ET.Element:
    return live.find("configuration/resources")[-1]


def test_a_cluster_that_holds_the_configuration_needs_no_change(wanted):
    assert cib.merged(as_live(wanted), cib.parse(wanted)) is None
    assert not cib.differs(ET.tostring(as_live(wanted)).decode(), wanted)


def test_no_cib_yet_means_a_change(wanted):
    assert cib.differs(None, wanted)
    assert cib.differs("", wanted)


def test_what_nodes_and_operators_set_stays(wanted):
    live = as_live(wanted)
    properties = live.find("configuration/crm_config/cluster_property_set")
    ET.SubElement(
        properties,
        "nvpair",
        id="cib-bootstrap-options-maintenance-mode",
        name="maintenance-mode",
        value="true",
    )
    resource = first_resource(live)
    meta = ET.Element("meta_attributes", id=f"{resource.get('id')}-meta_attributes")
    ET.SubElement(meta, "nvpair", id=f"{resource.get('id')}-target-role", name="target-role",
                  value="Stopped")  # fmt: skip
    resource.insert(0, meta)
    ET.SubElement(
        live.find("configuration/constraints"),
        "rsc_location",
        id=f"cli-ban-{resource.get('id')}-on-lab-mx1",
        rsc=resource.get("id"),
        node="lab-mx1",
        score="-INFINITY",
    )
    assert cib.merged(live, cib.parse(wanted)) is None


def test_a_changed_setting_is_changed_and_nothing_else(wanted):
    live = as_live(wanted)
    stickiness = live.find(".//nvpair[@name='resource-stickiness']")
    stickiness.set("value", "5")
    timeout = live.find(".//nvpair[@name='stonith-timeout']")
    timeout.set("value", "1s")
    new = cib.merged(live, cib.parse(wanted))
    assert new is not None
    assert new.get("epoch") == "8"
    assert new.find(".//nvpair[@name='resource-stickiness']").get("value") == str(
        pacemaker.STICKINESS
    )
    assert new.find(".//nvpair[@name='stonith-timeout']").get("value") != "1s"
    # Pacemaker's own property, the node's standby and the status are as they were.
    assert new.find(".//nvpair[@name='dc-version']") is not None
    assert new.find(".//nvpair[@name='standby']").get("value") == "on"
    assert new.find("status/node_state") is not None
    assert cib.merged(new, cib.parse(wanted)) is None


def test_a_resource_and_a_constraint_the_deploy_no_longer_wants_go(wanted):
    live = as_live(wanted)
    stale = copy.deepcopy(first_resource(live))
    stale.set("id", "retired")
    for element in stale.iter():
        if element is not stale and element.get("id"):
            element.set("id", "retired-" + element.get("id"))
    live.find("configuration/resources").append(stale)
    ET.SubElement(
        live.find("configuration/constraints"),
        "rsc_location",
        id="retired-somewhere",
        rsc="retired",
        node="lab-mx1",
        score="10",
    )
    new = cib.merged(live, cib.parse(wanted))
    assert new.find(".//*[@id='retired']") is None
    assert new.find(".//*[@id='retired-somewhere']") is None


def test_a_missing_resource_is_added(wanted):
    live = as_live(wanted)
    resources = live.find("configuration/resources")
    removed = resources[-1]
    resources.remove(removed)
    new = cib.merged(live, cib.parse(wanted))
    assert cib.same(new.find(f".//*[@id='{removed.get('id')}']"), removed)


@contextlib.contextmanager
def file_backed_cluster(wanted: str, monkeypatch, changed_before_patches: int):
    """Pacemaker's own tools (the suite's trixie tree) on a file-backed CIB (CIB_file) as a
    cluster just formed holds it: elected, no resources yet. Before each of the first
    `changed_before_patches` patches the CIB changes (as the elected controller writes its
    properties). Yields the CIB file, the wanted file and the patches cibadmin was given."""
    with trixie.overlay("mailstack-cib-apply-") as root:
        live_file, wanted_file = root / "cib.xml", root / "tmp" / "wanted.xml"
        elected = as_live(wanted)
        elected.set("dc-uuid", "1")
        elected.set("have-quorum", "1")
        for section in ("resources", "constraints"):
            elected.find(f"configuration/{section}").clear()
        live_file.write_bytes(ET.tostring(elected))
        wanted_file.write_text(wanted)
        patches = []

        def in_tree(*command):
            return subprocess.run(
                ["chroot", str(root), "env", "CIB_file=/cib.xml", *command],
                capture_output=True,
                text=True,
            )

        def run(*command):
            inside = [argument.replace(str(root), "") for argument in command]
            if inside[:2] == ["cibadmin", "--patch"]:
                patches.append(inside)
                if len(patches) <= changed_before_patches:
                    in_tree("crm_attribute", "--type", "crm_config", "--name", "cluster-name",
                            "--update", f"lab-cluster-{len(patches)}")  # fmt: skip
            return in_tree(*inside)

        monkeypatch.setattr(tempfile, "tempdir", str(root / "tmp"))
        monkeypatch.setattr(cib, "_run", run)
        monkeypatch.setattr(cib.time, "sleep", lambda seconds: None)
        yield live_file, wanted_file, patches


def test_a_patch_refused_because_the_cib_changed_is_made_again(wanted, monkeypatch):
    with file_backed_cluster(wanted, monkeypatch, changed_before_patches=1) as cluster:
        live_file, wanted_file, patches = cluster
        assert cib.apply(wanted_file, timeout=30)
        assert len(patches) == 2
        result = cib.parse(live_file.read_text())
        assert result.find(".//*[@name='cluster-name']").get("value") == "lab-cluster-1"
        assert not cib.differs(live_file.read_text(), wanted)


def test_a_patch_refused_until_the_timeout_fails_with_cibadmins_message(wanted, monkeypatch):
    with file_backed_cluster(wanted, monkeypatch, changed_before_patches=1000) as cluster:
        live_file, wanted_file, patches = cluster
        with pytest.raises(cib.CibError, match=r"cibadmin --patch failed: .*older than existing"):
            cib.apply(wanted_file, timeout=0)
        assert len(patches) == 1
        assert cib.differs(live_file.read_text(), wanted)
