"""Which volumes an environment has (Hetzner and the lab alike), and the lab API's pure parts."""

import pytest

from mailstack.lab.cloudmodel import ApiError, matches_selector
from mailstack.lab.lab import DEFAULT_STACK_FILE
from mailstack.lab.settings import LabSettings
from mailstack.lab.volumes import resource_id
from mailstack.settings import load_stack_file
from mailstack.settings.plan import plan_hosts, plan_volumes, server_labels

STACKS = DEFAULT_STACK_FILE.parent


def volumes_of(stack: str):
    settings = load_stack_file(STACKS / f"Pulumi.{stack}.yaml")
    return settings, plan_volumes(settings, plan_hosts(settings))


def test_ha_environments_get_a_queue_volume_per_mx_a_db_volume_each_and_one_mail_volume():
    for stack in ("production", "lab"):
        settings, volumes = volumes_of(stack)
        env = settings.environment.name
        by_name = {volume.name: volume for volume in volumes}
        hosts = plan_hosts(settings)
        expected = {f"{h.name}-data" for h in hosts if {"mx", "db"} & set(h.roles)}
        assert set(by_name) == expected | {f"{env}-mail"}, stack
        assert by_name[f"{env}-mail"].server == f"{env}-mailstore1"
        assert by_name[f"{env}-mail"].movable
        # Survivors take over a dead mx's queue; db volumes stay with their hosts.
        assert all(by_name[f"{h.name}-data"].movable for h in hosts if "mx" in h.roles)
        assert not any(by_name[f"{h.name}-data"].movable for h in hosts if "db" in h.roles)
        assert all(by_name[f"{h.name}-data"].server == h.name for h in hosts if "mx" in h.roles)
        assert all(v.size_gb >= 10 for v in volumes), "Hetzner's smallest volume is 10 GB"


def test_a_role_without_volume_size_gets_no_volume_and_single_gets_one():
    settings, _ = volumes_of("production")
    data = settings.model_dump(mode="json")
    data["topology"]["mx"]["volume_size_gb"] = 0
    changed = type(settings).model_validate(data)
    names = [v.name for v in plan_volumes(changed, plan_hosts(changed))]
    assert not any("-mx" in name for name in names) and f"{changed.environment.name}-mail" in names
    settings, volumes = volumes_of("staging")
    assert settings.topology.profile == "single"
    (host,) = plan_hosts(settings)
    assert [(v.name, v.server, v.size_gb) for v in volumes] == [
        (f"{host.name}-data", host.name, 70)
    ]


def test_server_labels_name_the_environment_and_each_role():
    settings, _ = volumes_of("lab")
    mx = next(h for h in plan_hosts(settings) if "mx" in h.roles)
    assert server_labels(settings, mx) == {"mailstack-environment": "lab", "role-mx": "true"}


def test_lab_ids_are_stable_eight_digits_and_differ_between_labs_and_names():
    ids = {resource_id(lab, "volume", name) for lab in ("a", "b") for name in ("x", "y")}
    assert len(ids) == 4
    assert all(10_000_000 <= i < 100_000_000 for i in ids)
    assert resource_id("a", "volume", "x") == resource_id("a", "volume", "x")
    assert resource_id("a", "volume", "x") != resource_id("a", "server", "x")


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("role-mx=true", True),
        ("role-mx==true", True),
        ("role-mx!=true", False),
        ("role-mx", True),
        ("!role-mx", False),
        ("!role-db", True),
        ("role-mx in (false,true)", True),
        ("role-mx notin (true)", False),
        ("env=lab,role-mx=true", True),
        ("env=lab,role-mx=false", False),
        ("env in (lab, prod),role-mx", True),
    ],
)
def test_label_selectors_as_hetzner_documents_them(selector, matches):
    assert matches_selector({"env": "lab", "role-mx": "true"}, selector) is matches


def test_a_malformed_label_selector_is_invalid_input():
    with pytest.raises(ApiError) as error:
        matches_selector({}, "a=b=c")
    assert (error.value.status, error.value.code) == (400, "invalid_input")


def test_the_cloud_api_port_differs_from_the_package_cache_port():
    with pytest.raises(ValueError, match="cloud_api_port"):
        LabSettings(apt_cache_port=8480, cloud_api_port=8480)
