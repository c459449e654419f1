"""The failover client's configuration: only an API endpoint and a token."""

import pytest

from mailstack.failover.hetzner import CloudConfig, ConfigurationError, read_env_file


def test_an_environment_file_gives_endpoint_and_token(tmp_path):
    path = tmp_path / "hcloud.env"
    path.write_text(
        "# written by the deploy\n\nHCLOUD_ENDPOINT=http://10.0.0.1:8480/v1\n"
        'HCLOUD_TOKEN="s3cret=x"\nOTHER = kept \n'
    )
    assert read_env_file(path) == {
        "HCLOUD_ENDPOINT": "http://10.0.0.1:8480/v1",
        "HCLOUD_TOKEN": "s3cret=x",
        "OTHER": "kept",
    }
    assert CloudConfig.load(path) == CloudConfig(
        token="s3cret=x", endpoint="http://10.0.0.1:8480/v1"
    )


def test_the_environment_is_used_without_a_file_and_hetzner_is_the_default_endpoint():
    assert CloudConfig.load(environ={"HCLOUD_TOKEN": "t"}) == CloudConfig(token="t", endpoint=None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("HCLOUD_ENDPOINT=http://x/v1\n", "no HCLOUD_TOKEN"),
        ("HCLOUD_TOKEN=\n", "no HCLOUD_TOKEN"),
        ("HCLOUD_TOKEN=t\nHCLOUD_ENDPOINT=api.example/v1\n", "is not a URL"),
        ("HCLOUD_TOKEN t\n", "not KEY=VALUE"),
    ],
)
def test_bad_configuration_is_refused_naming_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "hcloud.env"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        CloudConfig.load(path)


def test_a_missing_file_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read"):
        CloudConfig.load(tmp_path / "absent.env")
