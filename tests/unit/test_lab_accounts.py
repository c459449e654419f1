"""The mailboxes `mailstack lab up --deploy` (`make lab`) makes and prints: the test account and
the operators' alert addresses, so the lab's alert mail is delivered, not bounced."""

from mailstack.deploy.deployment import REPOSITORY
from mailstack.lab.cli import lab_accounts
from mailstack.secrets import SecretStore
from mailstack.settings import load_stack_file


def lab_settings(email_to: list[str]):
    settings = load_stack_file(REPOSITORY / "stacks/Pulumi.lab.yaml")
    monitoring = settings.monitoring
    notifications = monitoring.notifications.model_copy(update={"email_to": email_to})
    return settings.model_copy(
        update={"monitoring": monitoring.model_copy(update={"notifications": notifications})}
    )


def test_the_alert_addresses_in_the_platforms_domains_get_mailboxes(tmp_path):
    settings = load_stack_file(REPOSITORY / "stacks/Pulumi.lab.yaml")
    (alert_address,) = settings.monitoring.notifications.email_to
    secrets = SecretStore(tmp_path / "secrets.json")
    accounts = lab_accounts(settings, secrets)
    domain = settings.environment.primary_domain
    assert [(what, address) for what, address, _ in accounts] == [
        ("test account", f"test@{domain}"),
        ("alerts to", str(alert_address)),
    ]
    # The same passwords at the next `up --deploy`, kept in the lab's secrets; not the same two.
    again = lab_accounts(settings, SecretStore(tmp_path / "secrets.json"))
    assert again == accounts
    assert accounts[0][2] != accounts[1][2]


def test_an_alert_address_elsewhere_is_left_to_its_own_provider(tmp_path):
    settings = lab_settings(["noc@elsewhere.example", f"ops@{_domain()}"])
    accounts = lab_accounts(settings, SecretStore(tmp_path / "secrets.json"))
    assert [address for _, address, _ in accounts][1:] == [f"ops@{_domain()}"]


def _domain() -> str:
    return load_stack_file(REPOSITORY / "stacks/Pulumi.lab.yaml").environment.primary_domain
