"""postsrsd on the mx hosts: SRS for forwarded mail (mailstack.services.postsrsd)."""

from mailstack.deploy.kit import configure, packages, target
from mailstack.services import postsrsd

deployment, me = target()

packages("postsrsd", ["postsrsd"])
configure(postsrsd.UNIT, postsrsd.config_files(deployment, me), check=postsrsd.CHECK)
