import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from mailplatform import Platform


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
