"""Tunables of the platform's own services that an operator may want to change."""

from pydantic import Field

from mailstack.settings.base import Model


class MailstoreSettings(Model):
    """Dovecot on the mailstore pair."""

    lmtp_user_concurrency: int = Field(
        10,
        ge=1,
        le=100,
        description="Deliveries Dovecot takes at once for one mailbox (lmtp_user_concurrency_"
        "limit); more get 451. The mx hosts share it: each delivers at most its share at once "
        "per mailbox (Postfix's lmtp_destination_concurrency_limit), so a burst to one mailbox "
        "waits seconds in the queue instead of being deferred for minutes.",
    )
    removed_mail_retention_days: int = Field(
        30,
        ge=0,
        le=3650,
        description="How long a removed mailbox's mail is kept, unreachable, before the active "
        "mailstore node's clean-up job deletes it (the panel sets each removed mailbox's "
        "deadline from this; the job runs hourly). 0 deletes it at the next run.",
    )


class WebSettings(Model):
    """The web nodes: the control panel (Django under gunicorn) and Roundcube webmail, behind
    nginx."""

    brand_name: str = Field(
        "mailstack",
        min_length=1,
        max_length=60,
        pattern=r"^[^\x00-\x1f<>\"'\\]+$",
        description="The product name the platform's own host names show in the panel and in "
        "webmail (resellers' host names show their own brand).",
    )
    panel_workers: int = Field(
        3,
        ge=1,
        le=64,
        description="gunicorn worker processes of the panel on each web node (each serves one "
        "request at a time; a password check takes about 0.2 s of one core).",
    )
    webmail_workers: int = Field(
        8,
        ge=2,
        le=256,
        description="Most PHP-FPM processes Roundcube runs on each web node (pm.max_children; "
        "about 30 MiB each).",
    )
