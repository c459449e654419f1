"""The policy service on the mx hosts: greylisting and the outbound recipient limit
(mailstack.services.policyd, docs/policyd.md). Its code and venv come from roles/venv.py."""

from pyinfra.operations import files

from mailstack.deploy.kit import configure, target
from mailstack.services import policyd

deployment, me = target()

files.directory(name="Create the configuration directory", path="/etc/mailstack", mode="755")
configure(policyd.UNIT, policyd.config_files(deployment, me), check=policyd.CHECK)
