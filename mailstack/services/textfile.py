"""Node exporter's textfile collector: where the platform's jobs leave their reports
(mailstack.services.exporters configures the collector; mailstack.jobs writes the files)."""

TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
"""Node exporter reads every *.prom file here (Debian's default)."""
