"""Prefix search of a domain's mailboxes and forwardings from an index, whatever the collation.

`local_part LIKE 'abc%'` can use a b-tree index only in the C collation or with the pattern
operator class; the panel's search (and the API's `q=`) filters by domain and local-part
prefix, which these indexes answer without reading the domain's other rows.
"""

from django.db import migrations

INDEXES = """
CREATE INDEX accounts_mailbox_local_part_prefix
    ON accounts_mailbox (domain_id, local_part varchar_pattern_ops);
CREATE INDEX accounts_forwarding_local_part_prefix
    ON accounts_forwarding (domain_id, local_part varchar_pattern_ops);
"""
DROP = """
DROP INDEX accounts_forwarding_local_part_prefix;
DROP INDEX accounts_mailbox_local_part_prefix;
"""


class Migration(migrations.Migration):
    dependencies = [("accounts", "0005_lifecycle_views")]

    operations = [migrations.RunSQL(INDEXES, reverse_sql=DROP)]
