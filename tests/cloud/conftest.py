import sys
from pathlib import Path

import pytest

from mailstack.settings import load_stack_file

sys.path.insert(0, str(Path(__file__).parent))

from mocks import build_under_mocks

ROOT = Path(__file__).resolve().parents[2]
# Stacks that describe Hetzner environments (the lab stack describes local hosts).
CLOUD_STACKS = ["production", "staging"]


@pytest.fixture(scope="module", params=CLOUD_STACKS)
def built(request):
    settings = load_stack_file(ROOT / "stacks" / f"Pulumi.{request.param}.yaml")
    result = build_under_mocks(settings, request.param)
    result.settings = settings
    result.stack = request.param
    return result
