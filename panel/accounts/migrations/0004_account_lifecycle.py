"""Domain ownership, per-life mailbox storage, DKIM keys, user settings, the audit log, logos.

Existing data keeps working: existing domains were created by operators on the command line,
so they count as vouched for by the operator; existing mailboxes keep their mail where it is
(`<domain>/<local_part>`), while every mailbox created from now on gets a home of its own life
(`<domain>/<local_part>.<storage_id>`); every mailbox gets its settings row with the defaults.
"""

import uuid

import django.db.models.deletion
from django.db import migrations, models

import accounts.models
from accounts.usersettings import sieve_script

EXISTING_DOMAINS = """
UPDATE accounts_domain SET ownership = 'operator', ownership_proven = created,
    verification_token = replace(gen_random_uuid()::text, '-', '');
"""
EXISTING_MAILBOXES = """
UPDATE accounts_mailbox m SET storage_id = gen_random_uuid(), home = d.name || '/' || m.local_part
    FROM accounts_domain d WHERE d.id = m.domain_id;
"""


def settings_for_existing_mailboxes(apps, schema_editor) -> None:
    Mailbox = apps.get_model("accounts", "Mailbox")
    MailboxSettings = apps.get_model("accounts", "MailboxSettings")
    for mailbox in Mailbox.objects.all().only("id"):
        row = MailboxSettings(mailbox=mailbox)
        row.sieve_script = sieve_script(row)
        row.save()


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_alias_lookups")]

    operations = [
        migrations.AddField(
            model_name="reseller",
            name="logo_image",
            field=models.BinaryField(
                blank=True,
                help_text="An uploaded logo (PNG, JPEG, GIF or WebP); wins over logo_url.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="reseller",
            name="logo_content_type",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AddField(
            model_name="domain",
            name="ownership",
            field=models.CharField(
                choices=[
                    ("pending", "not proven yet"),
                    ("dns", "proven by a DNS TXT record"),
                    ("operator", "vouched for by the operator"),
                ],
                default="pending",
                help_text="How control of the domain was established; 'pending' domains take no mail.",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="domain",
            name="verification_token",
            field=models.CharField(
                default=accounts.models.new_verification_token,
                help_text="Published by the owner in TXT _mailstack-challenge.<domain> to prove control.",
                max_length=64,
            ),
        ),
        migrations.AddField(
            model_name="domain",
            name="ownership_proven",
            field=models.DateTimeField(
                blank=True, help_text="When ownership was proven or vouched for.", null=True
            ),
        ),
        migrations.RunSQL(EXISTING_DOMAINS, reverse_sql=migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name="domain",
            constraint=models.CheckConstraint(
                condition=models.Q(ownership__in=["pending", "dns", "operator"]),
                name="domain_ownership_known",
            ),
        ),
        migrations.AddField(
            model_name="mailbox",
            name="storage_id",
            field=models.UUIDField(null=True, editable=False),
        ),
        migrations.AddField(
            model_name="mailbox",
            name="home",
            field=models.CharField(default="", editable=False, max_length=400),
            preserve_default=False,
        ),
        migrations.RunSQL(EXISTING_MAILBOXES, reverse_sql=migrations.RunSQL.noop),
        migrations.AlterField(
            model_name="mailbox",
            name="storage_id",
            field=models.UUIDField(
                default=uuid.uuid4,
                editable=False,
                help_text="Identity of its storage.",
                unique=True,
            ),
        ),
        migrations.AlterField(
            model_name="mailbox",
            name="home",
            field=models.CharField(
                editable=False,
                help_text="Its directory below the mail root; never reused after removal.",
                max_length=400,
                unique=True,
            ),
        ),
        migrations.AddConstraint(
            model_name="mailbox",
            constraint=models.CheckConstraint(
                condition=models.Q(("home__regex", "^[a-z0-9][a-z0-9.-]*/[a-z0-9][a-z0-9._-]*$")),
                name="mailbox_home_relative",
            ),
        ),
        migrations.CreateModel(
            name="DomainKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "selector",
                    models.CharField(
                        help_text="The DNS label <selector>._domainkey.", max_length=63
                    ),
                ),
                (
                    "private_pem",
                    models.TextField(help_text="RSA private key, PKCS#8 PEM; never shown."),
                ),
                ("created", models.DateTimeField(auto_now_add=True)),
                (
                    "domain",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="keys",
                        to="accounts.domain",
                    ),
                ),
            ],
            options={
                "db_table": "accounts_dkim_key",
                "ordering": ["domain__name", "-created"],
                "constraints": [
                    models.UniqueConstraint(fields=("domain", "selector"), name="dkim_key_unique")
                ],
            },
        ),
        migrations.CreateModel(
            name="RemovedMailbox",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "address",
                    models.CharField(help_text="The address it had (for people).", max_length=320),
                ),
                (
                    "reseller_name",
                    models.CharField(help_text="Its reseller at removal.", max_length=64),
                ),
                ("storage_id", models.UUIDField(unique=True)),
                ("home", models.CharField(max_length=400, unique=True)),
                ("removed", models.DateTimeField(auto_now_add=True)),
                ("purge_after", models.DateTimeField(help_text="When its files may be deleted.")),
            ],
            options={
                "db_table": "accounts_removed_mailbox",
                "ordering": ["purge_after"],
                "indexes": [
                    models.Index(fields=["purge_after"], name="removed_mailbox_purge_after")
                ],
            },
        ),
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("at", models.DateTimeField(auto_now_add=True, db_index=True)),
                (
                    "actor",
                    models.CharField(help_text="Who: a user name or mail address.", max_length=320),
                ),
                ("actor_role", models.CharField(max_length=16)),
                ("action", models.CharField(help_text="create, change or delete.", max_length=16)),
                ("object_type", models.CharField(max_length=32)),
                ("object_name", models.CharField(max_length=400)),
                ("before", models.JSONField(blank=True, null=True)),
                ("after", models.JSONField(blank=True, null=True)),
                (
                    "reseller",
                    models.ForeignKey(
                        blank=True,
                        help_text="The tenant the object belongs to; its admins see the entry.",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="audit_entries",
                        to="accounts.reseller",
                    ),
                ),
            ],
            options={
                "db_table": "accounts_audit_entry",
                "ordering": ["-at", "-id"],
                "indexes": [models.Index(fields=["reseller", "-at"], name="audit_reseller_at")],
            },
        ),
        migrations.CreateModel(
            name="MailboxSettings",
            fields=[
                (
                    "mailbox",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="settings",
                        serialize=False,
                        to="accounts.mailbox",
                    ),
                ),
                ("vacation_enabled", models.BooleanField(default=False)),
                ("vacation_subject", models.CharField(blank=True, max_length=200)),
                ("vacation_body", models.TextField(blank=True, max_length=4000)),
                (
                    "vacation_start",
                    models.DateField(blank=True, help_text="First day (inclusive).", null=True),
                ),
                (
                    "vacation_end",
                    models.DateField(blank=True, help_text="Last day (inclusive).", null=True),
                ),
                (
                    "move_spam_to_junk",
                    models.BooleanField(
                        default=True, help_text="File mail marked as spam into the Junk folder."
                    ),
                ),
                ("sieve_script", models.TextField(blank=True, editable=False)),
                ("updated", models.DateTimeField(auto_now=True)),
            ],
            options={
                "db_table": "accounts_mailbox_settings",
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            ("vacation_start__isnull", True),
                            ("vacation_end__isnull", True),
                            ("vacation_end__gte", models.F("vacation_start")),
                            _connector="OR",
                        ),
                        name="mailbox_settings_vacation_ordered",
                    )
                ],
            },
        ),
        migrations.RunPython(settings_for_existing_mailboxes, migrations.RunPython.noop),
    ]
