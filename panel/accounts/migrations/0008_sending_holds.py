"""Sending holds (accounts.holds): the table, the view the policy service reads and the function
it holds a mailbox with.

mail.hold_sending(login, reason, evidence) holds the live mailbox `login` (case ignored) unless
it is held already, writes the audit entry in the same transaction, and answers whether it made a
new hold. It runs with its owner's rights; the lookup role may call it, so the mail services'
role can stop a mailbox's sending and nothing else it could not before.
"""

from django.conf import settings
from django.db import migrations, models

SQL = """
CREATE VIEW mail.sending_holds AS
    SELECT m.address AS sasl_username, h.reason, h.held_at
    FROM accounts_sending_hold h JOIN accounts_live_mailbox m ON m.id = h.mailbox_id;

CREATE FUNCTION mail.hold_sending(login text, hold_reason text, seen jsonb) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    box_id bigint;
    box_reseller bigint;
    box_address text;
BEGIN
    SELECT m.id, d.reseller_id, m.address INTO box_id, box_reseller, box_address
        FROM accounts_live_mailbox l
        JOIN accounts_mailbox m ON m.id = l.id
        JOIN accounts_domain d ON d.id = m.domain_id
        WHERE l.address = lower(login);
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO accounts_sending_hold (mailbox_id, reason, evidence, held_at)
        VALUES (box_id, hold_reason, seen, now())
        ON CONFLICT (mailbox_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO accounts_audit_entry
        (at, actor, actor_role, action, object_type, object_name, reseller_id, before, after)
        VALUES (now(), 'policy service', 'system', 'hold', 'sendinghold', box_address,
                box_reseller, NULL,
                jsonb_build_object('reason', hold_reason, 'evidence', seen));
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION mail.hold_sending(text, text, jsonb) FROM PUBLIC;
"""

REVERSE = """
DROP FUNCTION mail.hold_sending(text, text, jsonb);
DROP VIEW mail.sending_holds;
"""


def grant(apps, schema_editor) -> None:
    role = schema_editor.quote_name(settings.MAILPANEL_LOOKUP_ROLE)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"GRANT EXECUTE ON FUNCTION mail.hold_sending(text, text, jsonb) TO {role}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0007_forwarding_loop_check")]

    operations = [
        migrations.CreateModel(
            name="SendingHold",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "reason",
                    models.CharField(
                        choices=[
                            ("limit", "kept hitting the recipient limit"),
                            ("scan", "sent mail the outbound scan refused"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "evidence",
                    models.JSONField(
                        default=dict,
                        help_text="What the policy service counted: the threshold, the count, the window, and the last refusals it saw (time, client, recipients or rspamd's verdict).",
                    ),
                ),
                ("held_at", models.DateTimeField(db_index=True)),
                (
                    "notified_at",
                    models.DateTimeField(
                        blank=True,
                        help_text="When the notices went out; empty until they have.",
                        null=True,
                    ),
                ),
                (
                    "mailbox",
                    models.OneToOneField(
                        on_delete=models.deletion.CASCADE,
                        related_name="sending_hold",
                        to="accounts.mailbox",
                    ),
                ),
            ],
            options={"db_table": "accounts_sending_hold", "ordering": ["-held_at"]},
        ),
        migrations.AddConstraint(
            model_name="sendinghold",
            constraint=models.CheckConstraint(
                condition=models.Q(("reason__in", ["limit", "scan"])), name="sending_hold_reason"
            ),
        ),
        migrations.RunSQL(SQL, reverse_sql=REVERSE),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
