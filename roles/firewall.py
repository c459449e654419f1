"""The host firewall of every platform host (mailstack.services.firewall): nftables from Debian,
with the host's ruleset checked by nft before it is loaded, and loaded as one transaction.

Runs right after base, before any service listens. SSH from `environment.admin_cidrs` stays
open and the deploy's own connection is an established one, so the deploy never locks itself
out.
"""

from mailstack.deploy.kit import configure, packages, target
from mailstack.services import firewall

deployment, me = target()

packages("nftables", ["nftables"])
configure(firewall.UNIT, firewall.config_files(deployment, me), check=firewall.CHECK)
