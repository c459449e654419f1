"""inventory/contract.py turns the stack's inventory output into pyinfra groups."""

import json
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYINFRA = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "pyinfra"


def test_pyinfra_sees_every_host_in_its_role_groups(built, tmp_path):
    saved = tmp_path / "inventory.json"
    saved.write_text(json.dumps(built.inventory))
    result = subprocess.run(
        [str(PYINFRA), "inventory/contract.py", "debug-inventory"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "MAILSTACK_INVENTORY": str(saved)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    seen = dict(re.findall(r"^\[([^\]]+)\]\s*\n--> Groups: ([^\n]+)", output, re.M))
    for host in built.inventory["hosts"]:
        groups = {g.strip() for g in seen[host["name"]].split(",")}
        assert set(host["roles"]) <= groups
        assert f'"private_ip": "{host["private_ip"]}"' in output
