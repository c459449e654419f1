"""The control panel (Django) on the web hosts: gunicorn on loopback under a sandboxed unit, its
configuration and the `mailstack-panel` command, the static files nginx serves, and the database
migrations, run once per deploy from the first web host (mailstack.services.panel). Its code and
venv come from roles/venv.py; nginx in front of it from roles/nginx.py.
"""

from pyinfra import host
from pyinfra.facts.files import Directory
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

from mailstack.deploy.kit import configure, name_hosts, target
from mailstack.services import dovecot, panel

deployment, me = target()

files.directory(name="Create the configuration directory", path="/etc/mailstack", mode="755")
# The whole platform settings replaced the mail policy file (MAILPANEL_PLATFORM_SETTINGS).
files.file(name="No mail policy file", path="/etc/mailstack/mail-policy.json", present=False)
# The doveadm HTTP API answers on the active mailstore node only; both addresses carry the name.
mailstore_name = name_hosts(
    dovecot.SERVICE_NAME, deployment.addresses("mailstore"), "the mailstore pair"
)
# Notices of sending holds go through the mx hosts.
mx_name = name_hosts(dovecot.MX_NAME, deployment.addresses("mx"), "the mx hosts for notices")
installed = configure(
    panel.UNIT, panel.config_files(deployment, me), check=panel.CHECK, watch=[mailstore_name]
)

# The static files change only with the code, which the environment file's version follows.
new_static = host.get_fact(Directory, path=panel.STATIC_ROOT) is None
server.shell(
    name="Collect the panel's static files for nginx",
    commands=[
        f"install -d -m 755 {panel.STATIC_ROOT}",
        f"{panel.COMMAND} collectstatic --noinput --clear --verbosity 0",
        f"chmod -R a+rX {panel.STATIC_ROOT}",
    ],
    _if=lambda: new_static or any_changed(*installed)(),
)
# Migrations change only with the code too; one node runs them.
if me.name == deployment.first("web").name:
    server.shell(
        name="Migrate the account database",
        commands=[panel.wait_for_database(), f"{panel.COMMAND} migrate --noinput"],
        _if=any_changed(*installed),
    )
# The jobs read the panel's environment file, which the panel's check has checked.
for job in (panel.NOTICES_UNIT, panel.TRACE_PURGE_UNIT):
    configure(f"{job}.timer", panel.job_files(job), check=None)
