"""The views Postfix, Dovecot and the policy service read, in schema `mail`.

The lookup role (settings.MAILPANEL_LOOKUP_ROLE) may use schema `mail` and read its views and
nothing else; views run with their owner's rights, so it never needs the base tables. Column
names are a contract with the mail services' queries: see docs/accounts.md before renaming.
Helper views named `accounts_live_*` stay in schema public, out of the lookup role's reach.
"""

from django.conf import settings
from django.db import migrations

LIVE_VIEWS = """
CREATE VIEW accounts_live_domain AS
    SELECT d.id, d.name, d.catch_all
    FROM accounts_domain d JOIN accounts_reseller r ON r.id = d.reseller_id
    WHERE d.enabled AND r.enabled;

CREATE VIEW accounts_live_mailbox AS
    SELECT m.id, m.address, d.name AS domain, m.local_part, m.password_hash, m.quota_bytes,
           m.outbound_limit_class, m.spam_add_header_score, m.spam_reject_score
    FROM accounts_mailbox m JOIN accounts_live_domain d ON d.id = m.domain_id
    WHERE m.enabled;

CREATE VIEW accounts_live_forwarding AS
    SELECT f.id, f.address, f.keep_copy
    FROM accounts_forwarding f JOIN accounts_live_domain d ON d.id = f.domain_id
    WHERE f.enabled;
"""

MAIL_VIEWS = """
CREATE VIEW mail.virtual_domains AS
    SELECT name AS domain FROM accounts_live_domain;

CREATE VIEW mail.virtual_mailboxes AS
    SELECT address, domain || '/' || local_part || '/' AS maildir FROM accounts_live_mailbox;

-- One row per address Postfix rewrites: forwardings (the mailbox itself first when it keeps a
-- copy), every mailbox without a forwarding as itself (so a catch-all does not swallow it),
-- and '@domain' for catch-alls.
CREATE VIEW mail.virtual_aliases AS
    SELECT address, string_agg(target, ',' ORDER BY rank, target) AS targets
    FROM (
        SELECT f.address, m.address AS target, 0 AS rank
            FROM accounts_live_forwarding f JOIN accounts_live_mailbox m ON m.address = f.address
            WHERE f.keep_copy
        UNION ALL
        SELECT f.address, t.address, 1
            FROM accounts_live_forwarding f
            JOIN accounts_forwarding_target t ON t.forwarding_id = f.id
        UNION ALL
        SELECT m.address, m.address, 0
            FROM accounts_live_mailbox m
            WHERE NOT EXISTS (SELECT 1 FROM accounts_live_forwarding f WHERE f.address = m.address)
        UNION ALL
        SELECT '@' || name, catch_all, 1 FROM accounts_live_domain WHERE catch_all <> ''
    ) AS alias_rows
    GROUP BY address;

-- Which SASL logins may use an envelope sender: a mailbox its own address, and the local
-- mailboxes a forwarding delivers to the forwarding's address.
CREATE VIEW mail.sender_logins AS
    SELECT sender, string_agg(login, ',' ORDER BY login) AS logins
    FROM (
        SELECT address AS sender, address AS login FROM accounts_live_mailbox
        UNION
        SELECT f.address, m.address
            FROM accounts_live_forwarding f
            JOIN accounts_forwarding_target t ON t.forwarding_id = f.id
            JOIN accounts_live_mailbox m ON m.address = lower(t.address)
    ) AS sender_rows
    GROUP BY sender;

CREATE VIEW mail.dovecot_users AS
    SELECT address AS username,
           password_hash AS password,
           domain || '/' || local_part AS home,
           quota_bytes,
           CASE WHEN quota_bytes = 0 THEN 'unlimited' ELSE quota_bytes || 'B' END
               AS quota_storage_size
    FROM accounts_live_mailbox;

CREATE VIEW mail.outbound_limit_classes AS
    SELECT address AS sasl_username, outbound_limit_class AS limit_class
    FROM accounts_live_mailbox;

CREATE VIEW mail.spam_thresholds AS
    SELECT address, spam_add_header_score AS add_header_score, spam_reject_score AS reject_score
    FROM accounts_live_mailbox
    WHERE spam_reject_score IS NOT NULL;
"""

DROP_VIEWS = """
DROP SCHEMA mail CASCADE;
DROP VIEW accounts_live_forwarding;
DROP VIEW accounts_live_mailbox;
DROP VIEW accounts_live_domain;
"""


def create_schema(apps, schema_editor) -> None:
    role = settings.MAILPANEL_LOOKUP_ROLE
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone() is None:
            raise RuntimeError(
                f"MAILPANEL_LOOKUP_ROLE: the PostgreSQL role {role!r} does not exist; create it "
                "(the db role does) before migrating"
            )
        quoted = schema_editor.quote_name(role)
        cursor.execute("CREATE SCHEMA mail")
        cursor.execute("REVOKE ALL ON SCHEMA mail FROM PUBLIC")
        cursor.execute(f"GRANT USAGE ON SCHEMA mail TO {quoted}")
        # Views added to schema `mail` by later migrations are readable without another grant.
        cursor.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA mail GRANT SELECT ON TABLES TO {quoted}"
        )


def drop_default_privileges(apps, schema_editor) -> None:
    quoted = schema_editor.quote_name(settings.MAILPANEL_LOOKUP_ROLE)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA mail REVOKE SELECT ON TABLES FROM {quoted}"
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [
        migrations.RunSQL(LIVE_VIEWS, reverse_sql=DROP_VIEWS),
        migrations.RunPython(create_schema, drop_default_privileges),
        migrations.RunSQL(MAIL_VIEWS, reverse_sql=migrations.RunSQL.noop),
    ]
