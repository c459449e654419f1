"""The trace lines' table; the trace role (settings.MAILPANEL_TRACE_ROLE), which the nodes'
ingesters log in as, may insert into it and do nothing else (no reading back: a node does not see
another's lines)."""

import django.db.models.functions.text
from django.conf import settings
from django.db import migrations, models


def grant(apps, schema_editor) -> None:
    role = settings.MAILPANEL_TRACE_ROLE
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone() is None:
            raise RuntimeError(
                f"MAILPANEL_TRACE_ROLE: the PostgreSQL role {role!r} does not exist; create it "
                "(the db role does) before migrating"
            )
        quoted = schema_editor.quote_name(role)
        cursor.execute(f"GRANT INSERT ON tracing_event TO {quoted}")
        cursor.execute(f"GRANT USAGE ON SEQUENCE tracing_event_id_seq TO {quoted}")


def revoke(apps, schema_editor) -> None:
    quoted = schema_editor.quote_name(settings.MAILPANEL_TRACE_ROLE)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"REVOKE ALL ON tracing_event FROM {quoted}")


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="TraceEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("logged_at", models.DateTimeField()),
                ("host", models.CharField(max_length=253)),
                (
                    "program",
                    models.CharField(
                        help_text="'postfix/smtpd', 'rspamd', 'dovecot'...", max_length=64
                    ),
                ),
                ("pid", models.IntegerField(null=True)),
                ("queue_id", models.CharField(blank=True, max_length=320)),
                (
                    "next_queue_id",
                    models.CharField(
                        blank=True,
                        help_text="The queue id the message went on under.",
                        max_length=320,
                    ),
                ),
                ("message_id", models.CharField(blank=True, max_length=320)),
                ("client_address", models.CharField(blank=True, max_length=320)),
                ("sender", models.CharField(blank=True, max_length=320)),
                ("sender_domain", models.CharField(blank=True, max_length=253)),
                ("recipient", models.CharField(blank=True, max_length=320)),
                ("recipient_domain", models.CharField(blank=True, max_length=253)),
                ("status", models.CharField(blank=True, max_length=320)),
                ("dsn", models.CharField(blank=True, max_length=320)),
                ("score", models.FloatField(help_text="rspamd's score.", null=True)),
                ("text", models.TextField()),
                (
                    "fingerprint",
                    models.UUIDField(
                        help_text="Of the line: kept once if sent twice.", unique=True
                    ),
                ),
            ],
            options={
                "db_table": "tracing_event",
                "ordering": ["logged_at", "id"],
                "indexes": [
                    models.Index(fields=["logged_at"], name="tracing_event_at"),
                    models.Index(
                        condition=models.Q(("queue_id", ""), _negated=True),
                        fields=["queue_id"],
                        name="tracing_event_queue_id",
                    ),
                    models.Index(
                        condition=models.Q(("next_queue_id", ""), _negated=True),
                        fields=["next_queue_id"],
                        name="tracing_event_next_queue_id",
                    ),
                    models.Index(
                        condition=models.Q(("message_id", ""), _negated=True),
                        fields=["message_id"],
                        name="tracing_event_message_id",
                    ),
                    models.Index(
                        condition=models.Q(
                            ("queue_id", ""), models.Q(("client_address", ""), _negated=True)
                        ),
                        fields=["client_address", "logged_at"],
                        name="tracing_event_connection",
                    ),
                    models.Index(
                        django.db.models.functions.text.Upper("sender"),
                        condition=models.Q(("sender", ""), _negated=True),
                        name="tracing_event_sender",
                    ),
                    models.Index(
                        django.db.models.functions.text.Upper("recipient"),
                        condition=models.Q(("recipient", ""), _negated=True),
                        name="tracing_event_recipient",
                    ),
                ],
            },
        ),
        migrations.RunPython(grant, revoke),
    ]
