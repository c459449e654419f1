"""The platform's own Python code on the hosts that run it (policy service, panel).

The code is this repository's `mailstack/` and `panel/`, copied to /opt/mailstack/src; its
dependencies come from requirements-host.lock (hashed, for the hosts' Python) into the venv
/opt/mailstack/venv. The code runs with PYTHONPATH pointing at the copy, so nothing is built
on the hosts.
"""

from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server

from mailstack.deploying import APP_ROOT, APP_SOURCE, APP_VENV

apt.packages(
    name="Install Python's venv",
    packages=["python3-venv"],
    update=True,
    cache_time=3600,
)

files.directory(name="Create the application directory", path=APP_ROOT, mode="755")
for package in ("mailstack", "panel"):
    files.sync(
        name=f"Copy the {package} code",
        src=package,
        dest=f"{APP_SOURCE}/{package}",
        exclude=["*.pyc", "__pycache__"],
        delete=True,
    )
lock = files.put(
    name="Copy the hosts' dependency lock",
    src="requirements-host.lock",
    dest=f"{APP_ROOT}/requirements-host.lock",
    mode="644",
)
new_venv = not host.get_fact(File, path=f"{APP_VENV}/pyvenv.cfg")
if new_venv:
    server.shell(name="Create the venv", commands=[f"python3 -m venv {APP_VENV}"])
server.shell(
    name="Install the locked dependencies",
    commands=[
        f"{APP_VENV}/bin/pip install --quiet --disable-pip-version-check --require-hashes "
        f"--no-deps -r {APP_ROOT}/requirements-host.lock"
    ],
    _if=lambda: new_venv or lock.did_change(),
)
