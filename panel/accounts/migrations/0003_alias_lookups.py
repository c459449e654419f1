"""mail.virtual_aliases answered from the indexes, without targets that take no mail.

The first form mixed varchar and text in its UNION branches, which stops PostgreSQL from
pushing `address = '...'` into them: with 100,000 mailboxes a lookup took about 3 s. Every
branch now yields text. It also handed Postfix forwarding targets and catch-alls in hosted
domains that take no mail (disabled or removed), so that Postfix accepted mail for them and
bounced it afterwards; those are left out now, and an address left with no target vanishes.
The lookup role reads the new view through the default privileges of migration 0002.
"""

from django.db import migrations

ALIASES = """
CREATE INDEX accounts_domain_catch_all_key ON accounts_domain (('@' || name)) WHERE catch_all <> '';

DROP VIEW mail.virtual_aliases;

-- One row per address Postfix rewrites: forwardings (the mailbox itself first when it keeps a
-- copy), every mailbox without a forwarding as itself (so a catch-all does not swallow it),
-- and '@domain' for catch-alls. A target or catch-all in a hosted domain that takes no mail
-- now (disabled or missing) is left out.
CREATE VIEW mail.virtual_aliases AS
    WITH forwarded AS (
        SELECT f.address::text, t.address::text AS target
            FROM accounts_live_forwarding f
            JOIN accounts_forwarding_target t ON t.forwarding_id = f.id
        UNION ALL
        SELECT '@' || name, catch_all::text FROM accounts_live_domain WHERE catch_all <> ''
    ), alias_rows AS (
        SELECT f.address::text, m.address::text AS target, 0 AS rank
            FROM accounts_live_forwarding f JOIN accounts_live_mailbox m ON m.address = f.address
            WHERE f.keep_copy
        UNION ALL
        SELECT address, target, 1
            FROM forwarded
            WHERE EXISTS (SELECT 1 FROM accounts_live_mailbox m WHERE m.address = lower(target))
               OR EXISTS (SELECT 1 FROM accounts_live_forwarding f WHERE f.address = lower(target))
               OR NOT EXISTS (
                   SELECT 1 FROM accounts_domain d WHERE d.name = split_part(target, '@', 2)
               )
        UNION ALL
        SELECT m.address::text, m.address::text, 0
            FROM accounts_live_mailbox m
            WHERE NOT EXISTS (SELECT 1 FROM accounts_live_forwarding f WHERE f.address = m.address)
    )
    SELECT address, string_agg(target, ',' ORDER BY rank, target) AS targets
    FROM alias_rows
    GROUP BY address;
"""

FIRST_FORM = """
DROP VIEW mail.virtual_aliases;
DROP INDEX accounts_domain_catch_all_key;

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
"""


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_mail_views")]

    operations = [migrations.RunSQL(ALIASES, reverse_sql=FIRST_FORM)]
