"""Resellers' own host names on the web nodes (mailstack.services.resellerhosts): the job that
gives them certificates, nginx server blocks and webmail's brand, every minute from a timer,
without a deploy. After roles/acme.py, whose certbot account and challenge answerer it uses."""

from pyinfra.operations import files

from mailstack.deploy.kit import configure, target
from mailstack.services import resellerhosts

deployment, me = target()

files.directory(name="The job's state", path=resellerhosts.STATE_DIR, mode="700")
# The unit may write only where these exist (ProtectSystem=strict); Roundcube's PHP reads the
# brands, nginx the sites.
for purpose, path in resellerhosts.OUTPUT_DIRS.items():
    files.directory(name=f"The job's {purpose}", path=path, mode="755")
configure(
    f"{resellerhosts.UNIT}.timer",
    resellerhosts.config_files(deployment, me),
    check=resellerhosts.CHECK,
)
