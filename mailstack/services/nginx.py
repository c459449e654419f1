"""nginx, the one web server of a node: on port 80 of the nodes the balancers forward port 80 to
it answers ACME http-01 challenges (mailstack.services.acme); on the web nodes it also serves the
panel, webmail and the MTA-STS policy (mailstack.services.web)."""

from mailstack.deploy.configfile import ConfigFile
from mailstack.services import acme, web

UNIT = "nginx"
CHECK = "nginx -t -q"
DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
"""Debian's default site, which listens on every address: disabled."""


def config_files(deployment, host) -> list[ConfigFile]:
    return acme.challenge_files(deployment, host) + web.site_files(deployment, host)
