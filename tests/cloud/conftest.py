import asyncio
import sys
from pathlib import Path

import pytest

from mailstack.dkim import domain_keys
from mailstack.secrets import SecretStore
from mailstack.settings import load_stack_file

sys.path.insert(0, str(Path(__file__).parent))

from mocks import build_under_mocks

ROOT = Path(__file__).resolve().parents[2]
# Stacks that describe Hetzner environments (the lab stack describes local hosts).
CLOUD_STACKS = ["production", "staging"]


@pytest.fixture(scope="module", autouse=True)
def event_loop_for_pulumi():
    """Pulumi's runtime runs on the thread's current event loop; asyncio.run in the suite's other
    tests leaves none set, so without this these tests depend on running first."""
    # Left set afterwards, as Pulumi's own loop was before: later code may ask for it.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


@pytest.fixture(scope="module", params=CLOUD_STACKS)
def built(request, tmp_path_factory):
    settings = load_stack_file(ROOT / "stacks" / f"Pulumi.{request.param}.yaml")
    store = SecretStore(tmp_path_factory.mktemp("secrets") / "secrets.json")
    keys = domain_keys(settings, store)
    result = build_under_mocks(settings, request.param, keys)
    result.settings = settings
    result.dkim_keys = keys
    result.stack = request.param
    return result
