"""Valkey on the db hosts: an instance per use (the policy service's state, rspamd's data), each a
primary with replicas on the other db nodes, and Sentinel on every db node naming the primaries
(mailstack.services.valkey). The single profile's one host runs the instances without Sentinel.

Valkey and Sentinel own their files once written (failovers rewrite them), so a file is written
only where none exists, checked before the first start, and later changes of the settings are
applied to the running servers, which persist them.
"""

import shlex

from pyinfra import host
from pyinfra.facts.files import FindInFile
from pyinfra.operations import files, server, systemd

from mailstack.deploy.kit import configure, packages, target
from mailstack.facts import SentinelMasters, ValkeySettings
from mailstack.services import valkey

deployment, me = target()

packages("Valkey", valkey.PACKAGES + (valkey.SENTINEL_PACKAGES if deployment.db_clustered else []))
# Debian's default instance holds nothing of ours: one instance per use instead.
systemd.service(
    name="Keep Debian's default Valkey instance stopped",
    service="valkey-server",
    running=False,
    enabled=False,
)
for use in valkey.USES:
    files.directory(
        name=f"Data directory of the {use} instance",
        path=valkey.data_dir(use),
        user="valkey",
        group="valkey",
        mode="750",
    )
    initial = not host.get_fact(FindInFile, path=valkey.main_config(use), pattern=valkey.MARK)
    configure(
        valkey.unit(use),
        valkey.instance_files(deployment, me, use) if initial else [],
        check=valkey.check(use),
    )
    if not initial:
        store = deployment.valkey_store(use)
        wanted = valkey.runtime_settings(deployment, use)
        current = host.get_fact(
            ValkeySettings, port=store.port, password=store.password, names=tuple(wanted)
        )
        changed = {k: v for k, v in wanted.items() if current.get(k) != v}
        if changed:
            arguments = " ".join(f"{k} {shlex.quote(v)}" for k, v in changed.items())
            cli = f"REDISCLI_AUTH={store.password} valkey-cli -p {store.port} --no-auth-warning"
            server.shell(
                name=f"Apply to the {use} instance: {', '.join(changed)}",
                commands=[f"{cli} CONFIG SET {arguments}", f"{cli} CONFIG REWRITE"],
            )

if deployment.db_clustered:
    # Debian's package brings a sentinel.conf of its own: ours carries the mark.
    initial = not host.get_fact(FindInFile, path=valkey.SENTINEL_CONFIG, pattern=valkey.MARK)
    configure(
        valkey.SENTINEL_UNIT,
        valkey.sentinel_files(deployment, me) if initial else [],
        check=valkey.SENTINEL_CHECK,
    )
    if not initial:
        masters = host.get_fact(SentinelMasters, port=valkey.SENTINEL_PORT)
        for name, wanted in valkey.sentinel_wanted(deployment).items():
            current = masters.get(name, {})
            changed = {k: v for k, v in wanted.items() if current.get(k) != v}
            if changed:
                arguments = " ".join(f"{k} {v}" for k, v in changed.items())
                server.shell(
                    name=f"Sentinel: apply to {name}: {', '.join(changed)}",
                    commands=[
                        f"valkey-cli -p {valkey.SENTINEL_PORT} SENTINEL SET {name} {arguments}"
                    ],
                )
