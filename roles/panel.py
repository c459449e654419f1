"""The control panel (Django) on the web hosts: configuration, the `mailstack-panel` command
(manage.py with its configuration), and the database migrations, run from the first web host.
Its code and venv come from roles/venv.py."""

from io import StringIO

from pyinfra import host, inventory
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

from mailstack import database
from mailstack.deploying import (
    APP_SOURCE,
    APP_VENV,
    code_version,
    group_hosts,
    secrets,
    settings,
)

config = settings(host)
db_hosts = [member["private_ip"] for member in group_hosts(inventory, "db")]

files.directory(name="Create the configuration directory", path="/etc/mailstack", mode="755")
policy = files.put(
    name="Write the mail policies the panel applies (quota, limit classes)",
    src=StringIO(config.mail.model_dump_json(indent=2) + "\n"),
    dest="/etc/mailstack/mail-policy.json",
    mode="644",
)
environment = files.template(
    name="Configure the panel",
    src="templates/panel/etc/mailstack/panel.env.j2",
    dest="/etc/mailstack/panel.env",
    mode="600",
    code_version=code_version(),
    app_source=APP_SOURCE,
    db_hosts=db_hosts,
    db_port=database.PORT,
    db_name=database.DATABASE,
    db_user=database.PANEL_USER,
    db_password=secrets(host).get("db_panel_password"),
    lookup_role=database.LOOKUP_USER,
    secret_key=secrets(host).get("panel_secret_key"),
)
files.template(
    name="Install the mailstack-panel command",
    src="templates/panel/usr/local/bin/mailstack-panel.j2",
    dest="/usr/local/bin/mailstack-panel",
    mode="755",
    app_source=APP_SOURCE,
    app_venv=APP_VENV,
)

# Migrations change only with the code, which the environment file's version follows.
if host.data.name == group_hosts(inventory, "web")[0]["name"]:
    server.shell(
        name="Migrate the account database",
        commands=["mailstack-panel migrate --noinput"],
        _if=any_changed(environment, policy),
    )
