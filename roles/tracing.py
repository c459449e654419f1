"""Message tracing on the mx and mailstore nodes (mailstack.services.tracing): rsyslog from
Debian, its rule that hands the mail services' lines to the ingester, the ingester's
configuration. The ingester's code and venv come from roles/venv.py."""

from pyinfra.operations import files

from mailstack.deploy.kit import configure, packages, target
from mailstack.services import tracing

deployment, me = target()

packages("rsyslog", tracing.PACKAGES)
files.directory(name="Create the configuration directory", path="/etc/mailstack", mode="755")
files.directory(name="Create rsyslog's queue directory", path=tracing.QUEUE_DIR, mode="700")
configure(tracing.UNIT, tracing.config_files(deployment, me), check=tracing.CHECK)
