"""The mail services' views follow the account life cycle.

- A domain is live only once its ownership is proven (or vouched for by the operator).
- A mailbox's mail lives in its own `home` (`mail.dovecot_users`, `mail.virtual_mailboxes`),
  never reused after removal.
- `mail.sieve_scripts`: each user's settings as a Sieve script, for Dovecot's Sieve dict.
- `mail.expired_storage`: the homes of removed mailboxes whose retention has run out, for the
  mail store's clean-up job.
Column names are a contract: docs/accounts.md.
"""

from django.db import migrations

VIEWS = """
CREATE OR REPLACE VIEW accounts_live_domain AS
    SELECT d.id, d.name, d.catch_all
    FROM accounts_domain d JOIN accounts_reseller r ON r.id = d.reseller_id
    WHERE d.enabled AND r.enabled AND d.ownership <> 'pending';

CREATE OR REPLACE VIEW mail.virtual_mailboxes AS
    SELECT l.address, m.home || '/' AS maildir
    FROM accounts_live_mailbox l JOIN accounts_mailbox m ON m.id = l.id;

CREATE OR REPLACE VIEW mail.dovecot_users AS
    SELECT l.address AS username,
           l.password_hash AS password,
           m.home::text AS home,
           l.quota_bytes,
           CASE WHEN l.quota_bytes = 0 THEN 'unlimited' ELSE l.quota_bytes || 'B' END
               AS quota_storage_size
    FROM accounts_live_mailbox l JOIN accounts_mailbox m ON m.id = l.id;

-- Dovecot's Sieve dict: /priv/sieve/name/<name> gives script_id, /priv/sieve/data/<script_id>
-- the script; script_id changes whenever the script does.
CREATE VIEW mail.sieve_scripts AS
    SELECT l.address AS username,
           'mailstack-settings'::text AS name,
           md5(s.sieve_script) AS script_id,
           s.sieve_script AS script
    FROM accounts_live_mailbox l JOIN accounts_mailbox_settings s ON s.mailbox_id = l.id
    WHERE s.sieve_script <> '';

CREATE VIEW mail.expired_storage AS
    SELECT storage_id, home::text AS home, purge_after
    FROM accounts_removed_mailbox
    WHERE purge_after <= now();
"""

FORMER_VIEWS = """
DROP VIEW mail.expired_storage;
DROP VIEW mail.sieve_scripts;

CREATE OR REPLACE VIEW mail.dovecot_users AS
    SELECT address AS username,
           password_hash AS password,
           domain || '/' || local_part AS home,
           quota_bytes,
           CASE WHEN quota_bytes = 0 THEN 'unlimited' ELSE quota_bytes || 'B' END
               AS quota_storage_size
    FROM accounts_live_mailbox;

CREATE OR REPLACE VIEW mail.virtual_mailboxes AS
    SELECT address, domain || '/' || local_part || '/' AS maildir FROM accounts_live_mailbox;

CREATE OR REPLACE VIEW accounts_live_domain AS
    SELECT d.id, d.name, d.catch_all
    FROM accounts_domain d JOIN accounts_reseller r ON r.id = d.reseller_id
    WHERE d.enabled AND r.enabled;
"""


class Migration(migrations.Migration):
    dependencies = [("accounts", "0004_account_lifecycle")]

    operations = [migrations.RunSQL(VIEWS, reverse_sql=FORMER_VIEWS)]
