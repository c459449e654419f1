"""Valkey on the db hosts: the state every mx host shares (greylisting, outbound limits).

One instance on the first db host for now; replicas with Sentinel come with the HA work.
"""

from pyinfra import host
from pyinfra.operations import apt, files, systemd
from pyinfra.operations.util import any_changed

from mailstack import keyvalue
from mailstack.deploying import secrets

apt.packages(name="Install Valkey", packages=["valkey-server"], update=True, cache_time=3600)

valkey_conf = files.template(
    name="Configure Valkey",
    src="templates/valkey/etc/valkey/valkey.conf.j2",
    dest="/etc/valkey/valkey.conf",
    user="valkey",
    group="valkey",
    mode="640",
    private_ip=host.data.private_ip,
    port=keyvalue.PORT,
    password=secrets(host).get(keyvalue.PASSWORD_SECRET),
    maxmemory_mib=keyvalue.MAXMEMORY_MIB,
)

systemd.service(name="Run Valkey", service="valkey-server", running=True, enabled=True)
systemd.service(
    name="Restart Valkey for its new configuration",
    service="valkey-server",
    restarted=True,
    _if=any_changed(valkey_conf),
)
