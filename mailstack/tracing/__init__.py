"""Message tracing: the mail services' log lines, parsed and stored in the account database
(lines.py, ingest.py), searched by the panel (panel/tracing). docs/tracing.md."""
