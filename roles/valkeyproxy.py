"""HAProxy on the mx hosts in front of the Valkey primaries, for rspamd; clustered profiles only
(mailstack.services.valkeyproxy)."""

from pyinfra.operations import systemd

from mailstack.deploy.kit import configure, packages, target
from mailstack.services import valkeyproxy

deployment, me = target()

if deployment.db_clustered:
    packages("HAProxy", valkeyproxy.PACKAGES)
    if "loadbalancer" not in me.roles:
        # The package starts its own instance with an empty configuration: nothing to serve here.
        systemd.service(name="No default HAProxy", service="haproxy", running=False, enabled=False)
    configure(valkeyproxy.UNIT, valkeyproxy.config_files(deployment, me), check=valkeyproxy.CHECK)
