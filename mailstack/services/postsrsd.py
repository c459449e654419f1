"""postsrsd on the mx hosts: the Sender Rewriting Scheme for forwarded mail (Postfix's canonical
maps ask it). Every mx shares one secret, so a bounce to an SRS address is understood by
whichever mx receives it."""

from mailstack.deploy.configfile import ConfigFile

UNIT = "postsrsd"
FORWARD_PORT = 10001
REVERSE_PORT = 10002
SECRET_FILE = "/etc/postsrsd.secret"
SECRET = "srs_secret"
# The launcher sources this file as shell; postsrsd itself has no checker.
CHECK = "sh -n /etc/default/postsrsd"


def config_files(deployment, host) -> list[ConfigFile]:
    return [
        ConfigFile.template(
            "postsrsd",
            "/etc/default/postsrsd",
            srs_domain=deployment.settings.environment.primary_domain,
            secret_file=SECRET_FILE,
            forward_port=FORWARD_PORT,
            reverse_port=REVERSE_PORT,
        ),
        ConfigFile.literal(SECRET_FILE, deployment.secrets.get(SECRET) + "\n", mode="600"),
    ]
