"""pyinfra inventory from an inventory contract saved as JSON (MAILSTACK_INVENTORY=FILE): what
`mailstack deploy` runs pyinfra with (mailstack.deploy.runner), whatever made the contract."""

import os

from mailstack.inventory import Inventory

_file = os.environ.get("MAILSTACK_INVENTORY")
if not _file:
    raise SystemExit("MAILSTACK_INVENTORY names no inventory contract: use `mailstack deploy`")

globals().update(Inventory.read(_file).pyinfra_groups())
