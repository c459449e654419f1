"""nginx, the node's one web server (mailstack.services.nginx): ACME challenges on port 80, and
on the web nodes the panel, webmail and the MTA-STS policy. Hosts that need none of them get no
nginx."""

from pyinfra.operations import files

from mailstack.deploy.kit import configure, packages, target
from mailstack.services import nginx

deployment, me = target()
config = nginx.config_files(deployment, me)

if config:
    packages("nginx", ["nginx"], no_recommends=True)
    default_site = files.link(
        name="Disable nginx's default site", path=nginx.DEFAULT_SITE, present=False
    )
    configure(nginx.UNIT, config, check=nginx.CHECK, watch=[default_site])
