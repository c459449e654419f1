import pytest
from browser import new_chromium

from mailstack.testing.platform import Platform


@pytest.fixture(scope="session")
def platform(lab) -> Platform:
    platform = Platform(lab)
    existing = platform.panel("reseller", "list")
    if "e2e" not in existing.split():
        platform.panel("reseller", "add", "e2e", "--brand-name", "End to end")
    domains = platform.panel("domain", "list")
    for domain in platform.settings.environment.mail_domains:
        if domain not in domains:
            platform.panel("domain", "add", domain, "--reseller", "e2e")
    return platform


@pytest.fixture
def chromium(platform):
    """A chromium of the test's own (tests/e2e/browser.py)."""
    with new_chromium(platform) as driver:
        yield driver
