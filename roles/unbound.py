"""unbound on the mx hosts: their own resolver (mailstack.services.unbound)."""

from mailstack.deploy.kit import configure, install, packages, target
from mailstack.services import unbound

deployment, me = target()

# The root trust anchor (DNSSEC) comes with dns-root-data, which apt would only recommend.
packages("unbound", ["unbound", "dns-root-data"])
configure(unbound.UNIT, unbound.config_files(deployment, me), check=unbound.CHECK)
install(unbound.resolv_conf(), "resolver")
