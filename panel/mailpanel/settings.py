"""Django settings of the control panel, read from the environment the panel role writes.

Every value comes from a `MAILPANEL_*` environment variable (a `*_FILE` variant reads a secret
from a file instead), so the same code runs on panel hosts, in the lab and in the test suite;
docs/accounts.md lists them. The platform's typed settings (`mailstack.settings.Settings`) come
as a JSON file (`MAILPANEL_PLATFORM_SETTINGS`), or only their `mail` part
(`MAILPANEL_MAIL_POLICY`, `MailPolicySettings`).

The panel runs behind a reverse proxy on every web node: state lives in PostgreSQL (sessions,
login attempts, uploaded logos, the account data) and Valkey (DKIM keys for rspamd), static
files are collected into `MAILPANEL_STATIC_ROOT` for the web server.
"""

import os
from datetime import timedelta
from pathlib import Path

from mailstack.settings import Settings
from mailstack.settings.policies import MailPolicySettings
from mailstack.settings.tracing import TracingSettings

PANEL_DIR = Path(__file__).resolve().parents[1]


def _env(name: str, default: str = "") -> str:
    """The value of MAILPANEL_<name>, or of the file MAILPANEL_<name>_FILE names."""
    path = os.environ.get(f"MAILPANEL_{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(f"MAILPANEL_{name}", default)


def _flag(name: str, default: bool) -> bool:
    value = _env(name, "true" if default else "false").strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"MAILPANEL_{name}: {value!r} is not true or false")
    return value in ("true", "1", "yes")


def _list(name: str) -> list[str]:
    return [item.strip() for item in _env(name).split(",") if item.strip()]


def _platform() -> Settings | None:
    path = _env("PLATFORM_SETTINGS")
    return Settings.model_validate_json(Path(path).read_text()) if path else None


def _mail_policy(platform: Settings | None) -> MailPolicySettings:
    if platform is not None:
        return platform.mail
    path = _env("MAIL_POLICY")
    if not path:
        return MailPolicySettings()
    return MailPolicySettings.model_validate_json(Path(path).read_text())


# Django refuses to sign anything (sessions, CSRF tokens) with an empty key.
SECRET_KEY = _env("SECRET_KEY")
DEBUG = False
# The platform's own panel host names; resellers' own names come from the account data, so the
# host check is tenancy.middleware.BrandMiddleware's, which answers 400 to any other name.
MAILPANEL_PLATFORM_HOSTS: list[str] = [h.lower() for h in _list("ALLOWED_HOSTS")]
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "axes",
    "accounts",
    "tenancy",
    "web",
    "api",
    "tracing",
]

MIDDLEWARE = [
    # First: a host name that is neither the platform's nor a reseller's gets 400 before
    # anything (the HTTPS redirect included) uses it.
    "tenancy.middleware.BrandMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tenancy.middleware.TenantLoginMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]
ROOT_URLCONF = "mailpanel.urls"
WSGI_APPLICATION = "mailpanel.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenancy.middleware.brand_context",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        # A comma-separated host list (libpq multi-host): the panel writes, so it connects to
        # whichever database node currently accepts writes (MAILPANEL_DB_TARGET_SESSION_ATTRS,
        # read-write as the deploy writes it).
        "HOST": _env("DB_HOST", "localhost"),
        "PORT": _env("DB_PORT", "5432"),
        "NAME": _env("DB_NAME", "mailstack"),
        "USER": _env("DB_USER", "mailpanel"),
        "PASSWORD": _env("DB_PASSWORD"),
        "OPTIONS": {
            "target_session_attrs": _env("DB_TARGET_SESSION_ATTRS", "read-write"),
            # A dead node in the list costs at most this long before libpq tries the next, and
            # the nodes are tried in random order, so it is not the first one every time.
            "connect_timeout": int(_env("DB_CONNECT_TIMEOUT", "2")),
            "load_balance_hosts": "random",
            # An open connection to a node that died fails after this long (ms), not minutes.
            "tcp_user_timeout": int(_env("DB_TCP_USER_TIMEOUT", "5000")),
        },
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }
}

# The PostgreSQL role Postfix, Dovecot and the policy service log in as; the migrations grant it
# read access to the views in schema `mail` and nothing else.
MAILPANEL_LOOKUP_ROLE = _env("LOOKUP_ROLE", "mail_lookup")
# The role the mx and mailstore nodes store trace lines as: INSERT on tracing_event, nothing else.
MAILPANEL_TRACE_ROLE = _env("TRACE_ROLE", "mail_trace")

MAILPANEL_PLATFORM = _platform()
MAILPANEL_MAIL_POLICY = _mail_policy(MAILPANEL_PLATFORM)
# Days a trace line is kept (settings tracing.retention_days); `trace purge` deletes older ones.
MAILPANEL_TRACE_RETENTION_DAYS = (
    MAILPANEL_PLATFORM.tracing if MAILPANEL_PLATFORM else TracingSettings()
).retention_days
MAILPANEL_BRAND_NAME = _env("BRAND_NAME", "mailstack")
"""The name the platform's own host names show (resellers' host names show their brand)."""
# Where the DKIM keys of customer domains go for rspamd (accounts.dkimstore); empty: nowhere.
MAILPANEL_VALKEY_URL = _env("VALKEY_URL")
# HOST:PORT of each Sentinel naming Valkey's primary (comma-separated), and the name they know it
# by; empty: MAILPANEL_VALKEY_URL's server is the primary.
MAILPANEL_VALKEY_SENTINELS = [s for s in _env("VALKEY_SENTINELS", "").split(",") if s]
MAILPANEL_VALKEY_MASTER = _env("VALKEY_MASTER", "mailstack-filters")
# Resolvers for ownership proofs and the published-record check ("ip" or "ip:port", comma-
# separated); empty: the host's /etc/resolv.conf.
MAILPANEL_DNS_RESOLVERS = _list("DNS_RESOLVERS")
MAILPANEL_REMOVED_MAIL_RETENTION_DAYS = int(_env("REMOVED_MAIL_RETENTION_DAYS", "30"))
# Dovecot's doveadm HTTP API on the active mailstore node, which ends a changed account's open
# sessions (accounts.sessions); empty: they end when Dovecot's auth cache expires.
MAILPANEL_DOVEADM_URL = _env("DOVEADM_URL")
MAILPANEL_DOVEADM_API_KEY = _env("DOVEADM_API_KEY")
# Where the panel hands over its notices (sending holds, accounts.holdnotices): HOST:PORT of the
# mx hosts' listener for the platform's own mail, and the sender it admits; empty: none are sent.
MAILPANEL_NOTICE_RELAY = _env("NOTICE_RELAY")
MAILPANEL_NOTICE_FROM = _env("NOTICE_FROM")
MAILPANEL_PROXY_COUNT = int(_env("PROXY_COUNT", "1"))
"""Reverse proxies in front of the panel that append to X-Forwarded-For (for login throttling)."""

AUTHENTICATION_BACKENDS = [
    # First, so that a locked-out client is refused before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "tenancy.backends.MailboxBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:home"

# Login throttling: five failures for one user name from one address lock that pair out for
# 15 minutes (a whole address is not locked, so one client cannot lock out everyone behind a
# shared address, nor one user by guessing from many).
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "tenancy.middleware.client_ip"
AXES_LOCKOUT_TEMPLATE = "web/locked_out.html"

SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = 8 * 3600
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Reached over HTTPS through the reverse proxy, which says so in X-Forwarded-Proto; false only
# for a panel on loopback in tests.
MAILPANEL_HTTPS = _flag("HTTPS", True)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = MAILPANEL_HTTPS
SECURE_SSL_REDIRECT = MAILPANEL_HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if MAILPANEL_HTTPS else None
SECURE_HSTS_SECONDS = int(_env("HSTS_SECONDS", "31536000")) if MAILPANEL_HTTPS else 0
# No HSTS preloading nor includeSubDomains: the panel answers on resellers' own host names too,
# in their domains, whose other names are theirs to decide about.
SILENCED_SYSTEM_CHECKS = ["security.W021", "security.W005"]
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

STATIC_URL = "/static/"
STATIC_ROOT = _env("STATIC_ROOT", "/var/lib/mailstack/panel/static")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.IsAdmin"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "mailstack provisioning API",
    "DESCRIPTION": "Resellers, domains, mailboxes and forwardings under the panel's "
    "permission model. Authenticate with `Authorization: Bearer <token>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}

USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
