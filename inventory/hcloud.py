"""pyinfra inventory of a Hetzner environment, from its Pulumi stack's `inventory` output.

    MAILSTACK_STACK=production pyinfra inventory/hcloud.py deploy.py

MAILSTACK_INVENTORY=FILE reads a saved `pulumi stack output inventory --json` instead, e.g. on
a machine without access to the Pulumi backend.
"""

import os

from mailstack.inventory import Inventory, from_pulumi_stack

if os.environ.get("MAILSTACK_INVENTORY"):
    _inventory = Inventory.read(os.environ["MAILSTACK_INVENTORY"])
else:
    _inventory = from_pulumi_stack(os.environ.get("MAILSTACK_STACK", "production"))

_groups = _inventory.pyinfra_groups()
mx = _groups["mx"]
mailstore = _groups["mailstore"]
db = _groups["db"]
web = _groups["web"]
