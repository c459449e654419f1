"""Django settings of the control panel, read from the environment the panel role writes.

Every value comes from a `MAILPANEL_*` environment variable (a `*_FILE` variant reads a secret
from a file instead), so the same code runs on panel hosts, in the lab and in the test suite.
The mail policies (default quota, outbound limit classes, spam thresholds) are the platform's
typed settings (`mailstack.settings.policies.MailPolicySettings`), handed over as a JSON file.
"""

import os
from pathlib import Path

from mailstack.settings.policies import MailPolicySettings


def _env(name: str, default: str = "") -> str:
    """The value of MAILPANEL_<name>, or of the file MAILPANEL_<name>_FILE names."""
    path = os.environ.get(f"MAILPANEL_{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(f"MAILPANEL_{name}", default)


def _mail_policy() -> MailPolicySettings:
    path = _env("MAIL_POLICY")
    if not path:
        return MailPolicySettings()
    return MailPolicySettings.model_validate_json(Path(path).read_text())


# Empty until the web UI needs one; Django refuses to sign anything with an empty key.
SECRET_KEY = _env("SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS: list[str] = [h for h in _env("ALLOWED_HOSTS").split(",") if h]

INSTALLED_APPS = ["accounts"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        # A comma-separated host list (libpq multi-host): the panel writes, so it connects to
        # whichever database node currently accepts writes.
        "HOST": _env("DB_HOST", "localhost"),
        "PORT": _env("DB_PORT", "5432"),
        "NAME": _env("DB_NAME", "mailstack"),
        "USER": _env("DB_USER", "mailpanel"),
        "PASSWORD": _env("DB_PASSWORD"),
        "OPTIONS": {"target_session_attrs": "read-write"},
    }
}

# The PostgreSQL role Postfix, Dovecot and the policy service log in as; the migrations grant it
# read access to the views in schema `mail` and nothing else.
MAILPANEL_LOOKUP_ROLE = _env("LOOKUP_ROLE", "mail_lookup")

MAILPANEL_MAIL_POLICY = _mail_policy()

USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
