"""The platform's own Python code on the hosts that run it (policy service, panel, the web and
mail stores' jobs).

The code is this repository's `mailstack/` and `panel/`, copied as one archive (one checksum
when nothing changed) and unpacked to /opt/mailstack/src; its dependencies come from
requirements-host.lock (hashed, for the hosts' Python) into the venv /opt/mailstack/venv. The
code runs with PYTHONPATH pointing at the copy, so nothing is built on the hosts.
"""

from io import BytesIO

from pyinfra import host
from pyinfra.facts.files import Directory, File
from pyinfra.operations import files, server

from mailstack.deploy.deployment import APP_ROOT, APP_SOURCE, APP_VENV, code_archive
from mailstack.deploy.kit import packages

packages("Python's venv", ["python3-venv"])
files.directory(name="Create the application directory", path=APP_ROOT, mode="755")
code = files.put(
    name="Copy the platform's code",
    src=BytesIO(code_archive()),
    dest=f"{APP_ROOT}/code.tar.gz",
    mode="644",
)
unpacked = host.get_fact(Directory, path=APP_SOURCE) is not None
staging = f"{APP_SOURCE}.new"
# Unpacked beside and swapped in whole, so no file of an older version stays behind.
server.shell(
    name="Unpack the platform's code",
    commands=[
        f"rm -rf {staging}",
        f"mkdir -p {staging}",
        f"tar --extract --gzip --touch --file {APP_ROOT}/code.tar.gz --directory {staging}",
        f"rm -rf {APP_SOURCE}",
        f"mv {staging} {APP_SOURCE}",
    ],
    _if=lambda: code.did_change() or not unpacked,
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
