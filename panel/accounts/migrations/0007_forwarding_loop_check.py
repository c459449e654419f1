"""mail.forwarding_loop(address): whether mail to an address would go round in a forwarding loop.

The panel refuses loops when they are made (accounts/loops.py); this is for one that slips
through (data written around the panel). Postfix asks it at RCPT for each recipient
(sql/forwarding_loops.cf), so a looping address is refused on its own instead of Postfix
deferring the whole message for every recipient with "Alias expansion error".

It follows mail.virtual_aliases as Postfix does: an address's targets, else its domain's
catch-all, and an address that maps to itself ends there. It walks from the one address asked
about, at most 100 steps deep, and runs with its owner's rights; only the lookup role may call it.
"""

from django.conf import settings
from django.db import migrations

FUNCTION = """
CREATE FUNCTION mail.forwarding_loop(start text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = mail, pg_temp AS $$
    WITH RECURSIVE walk(node, path, looped) AS (
        SELECT lower(start), ARRAY[lower(start)], false
      UNION ALL
        SELECT step.target, walk.path || step.target, step.target = ANY(walk.path)
        FROM walk
        CROSS JOIN LATERAL (
            SELECT unnest(string_to_array(alias.targets, ',')) AS target
            FROM mail.virtual_aliases AS alias
            WHERE alias.address = COALESCE(
                (SELECT address FROM mail.virtual_aliases WHERE address = walk.node),
                (SELECT address FROM mail.virtual_aliases
                    WHERE address = '@' || split_part(walk.node, '@', 2))
            )
        ) AS step
        WHERE NOT walk.looped AND step.target <> walk.node AND cardinality(walk.path) < 100
    )
    SELECT EXISTS (SELECT 1 FROM walk WHERE looped)
$$;
REVOKE ALL ON FUNCTION mail.forwarding_loop(text) FROM PUBLIC;
"""


def grant(apps, schema_editor) -> None:
    role = schema_editor.quote_name(settings.MAILPANEL_LOOKUP_ROLE)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"GRANT EXECUTE ON FUNCTION mail.forwarding_loop(text) TO {role}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0006_prefix_search")]

    operations = [
        migrations.RunSQL(FUNCTION, reverse_sql="DROP FUNCTION mail.forwarding_loop(text);"),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
