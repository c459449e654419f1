"""pyinfra inventory of a running lab: `pyinfra inventory/lab.py deploy.py`.

Reads `.lab/<name>/inventory.json`, written by `mailstack lab up`; the lab is chosen by the
environment variable MAILSTACK_LAB (default: the lab stack's default name, `mailstack`).
"""

import os
from pathlib import Path

from mailstack.inventory import Inventory
from mailstack.lab.settings import load_lab_settings

_repository = Path(__file__).resolve().parents[1]
_name = (
    os.environ.get("MAILSTACK_LAB")
    or load_lab_settings(_repository / "stacks/Pulumi.lab.yaml").default_name
)
_file = _repository / ".lab" / _name / "inventory.json"
if not _file.exists():
    raise SystemExit(f"lab {_name!r} is not up ({_file} missing): run `mailstack lab up`")

globals().update(Inventory.read(_file).pyinfra_groups())
