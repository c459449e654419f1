"""Deploys converge, and a configuration change reaches a service only after its own checker
passed it: a broken file fails the deploy with the checker's words while the service runs on
with the configuration it had; a change a deploy wrote but did not apply is applied by the next.
"""

import pytest

from mailstack.deploy.kit import TXN, TXN_STATE
from mailstack.services import postfix

pytestmark = pytest.mark.lab

TYPO = "smtpd_tls_secrity_level = encrypt"
BROKEN_DEPLOY = f'''
from mailstack.deploy.configfile import ConfigFile
from mailstack.deploy.kit import configure, target
from mailstack.services import postfix

deployment, me = target()
files = [
    ConfigFile.literal(f.path, f.render() + "{TYPO}\\n", effect=f.effect, mode=f.mode)
    if f.path == "/etc/postfix/main.cf" else f
    for f in postfix.config_files(deployment, me)
]
configure(postfix.UNIT, files, check=postfix.CHECK)
'''


def test_second_deploy_reports_no_changes(platform):
    result = platform.deploy()
    assert result.returncode == 0, result.output[-3000:]
    assert result.changed_operations == [], "operations that changed something:\n" + "\n".join(
        result.changed_operations
    )


def postfix_master(platform, mx: str) -> str:
    main_pid = platform.sh(mx, "systemctl show -p MainPID --value postfix").strip()
    assert main_pid != "0", f"Postfix does not run on {mx}"
    return main_pid


def test_a_broken_file_fails_the_deploy_and_postfix_serves_on(platform, tmp_path):
    mx = platform.mx_hosts()[0]
    master = postfix_master(platform, mx)
    main_cf = platform.sh(mx, "cat /etc/postfix/main.cf")
    deploy_file = tmp_path / "broken.py"
    deploy_file.write_text(BROKEN_DEPLOY)

    result = platform.deploy(mx, deploy_file=deploy_file)

    assert result.returncode != 0
    # The checker's own words, and what the transaction did about them.
    assert f"unused parameter: {TYPO.split(' = ')[0]}" in result.output, result.output[-3000:]
    assert "fails its check" in result.output
    assert platform.sh(mx, "cat /etc/postfix/main.cf") == main_cf
    assert postfix_master(platform, mx) == master
    assert platform.sh(mx, f"ls {TXN_STATE}").strip() == ""
    with platform.mx_session(mx, platform.proxied_client_address()) as session:
        assert session.noop()[0] == 250


def test_a_change_written_but_not_applied_is_applied_by_the_next_deploy(platform):
    """As if a deploy stopped between writing main.cf and restarting Postfix."""
    mx = platform.mx_hosts()[-1]
    master = postfix_master(platform, mx)
    platform.sh(mx, f"{TXN} begin {postfix.UNIT} /etc/postfix/main.cf")

    result = platform.deploy(mx)

    assert result.returncode == 0, result.output[-3000:]
    assert any(
        "check postfix's configuration, then restart" in line for line in result.changed_operations
    )
    assert postfix_master(platform, mx) != master
    assert platform.sh(mx, f"ls {TXN_STATE}").strip() == ""
