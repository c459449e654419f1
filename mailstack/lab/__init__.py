"""The lab: the platform's topology as local Debian hosts (systemd-nspawn) on one machine.

`Lab(name).up()` brings a lab up, `down()` removes it, `faults` breaks it on purpose. See
docs/lab.md for how it maps to production.
"""

from mailstack.lab.hosts import LabHost
from mailstack.lab.lab import Lab
from mailstack.lab.settings import LabSettings
from mailstack.lab.state import LabState
from mailstack.lab.system import LabError

__all__ = ["Lab", "LabError", "LabHost", "LabSettings", "LabState"]
