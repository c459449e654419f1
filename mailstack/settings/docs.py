"""Generates docs/settings.md from the models, so the reference never drifts from the code."""

import json
import types
import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

HEADER = """# Settings reference

Generated from the models in `mailstack/settings/` by `make docs`; a test fails when this file
is stale. Every environment is one stack file, `stacks/Pulumi.<env>.yaml`, whose
`config: mailstack:settings:` holds the tree below; write only what differs from the defaults.
Check a file with `mailstack settings check stacks/Pulumi.<env>.yaml`.
"""


READ_BY: dict[str, str] = {
    "": "the Pulumi program, the lab and every role",
    "environment": "the Pulumi program (servers, DNS, firewalls), the lab, roles/postfix.py "
    "(host names), roles/certificates.py and roles/acme.py (certificate names), "
    "roles/firewall.py (SSH from admin_cidrs)",
    "environment.hostnames": "the Pulumi program (DNS), roles/certificates.py, roles/acme.py",
    "topology": "the Pulumi program and the lab (mailstack.settings.plan)",
    "topology.mx": "the Pulumi program and the lab (mailstack.settings.plan)",
    "topology.mailstore": "the Pulumi program and the lab (mailstack.settings.plan)",
    "topology.db": "the Pulumi program and the lab (mailstack.settings.plan)",
    "topology.web": "the Pulumi program and the lab (mailstack.settings.plan)",
    "network": "the Pulumi program and the lab (mailstack.settings.plan)",
    "network.offsets": "the Pulumi program and the lab (mailstack.settings.plan)",
    "network.firewall": "roles/firewall.py (mailstack.services.firewall)",
    "network.firewall.allow[]": "roles/firewall.py (mailstack.services.firewall)",
    "mail": "roles/postfix.py (sizes, DNSBLs), roles/dovecot.py (quota), roles/panel.py",
    "mail.dnsbls[]": "roles/postfix.py (postscreen)",
    "mail.greylisting": "roles/policyd.py, roles/postfix.py",
    "mail.outbound_limit": "roles/policyd.py, roles/postfix.py, roles/panel.py (classes)",
    "mail.outbound_limit.default": "roles/policyd.py",
    "mail.outbound_limit.classes.<name>": "roles/policyd.py, roles/panel.py",
    "mail.outbound_limit.sending_hold": "roles/policyd.py, roles/rspamd.py (its reports)",
    "mail.policy_service": "roles/policyd.py, roles/postfix.py (port), roles/monitoring.py "
    "(metrics port), roles/rspamd.py (scan reports port)",
    "mail.spam": "roles/rspamd.py",
    "mail.spam.ip_blocklists[]": "roles/rspamd.py",
    "mail.spam.uri_blocklists[]": "roles/rspamd.py",
    "mail.antivirus": "roles/clamav.py, roles/rspamd.py (scan size)",
    "mail.dkim": "roles/rspamd.py, the Pulumi program (DKIM records), the lab's DNS",
    "tls": "roles/certificates.py, roles/acme.py, the Pulumi program (balancers' port 80)",
    "tls.acme": "roles/acme.py, roles/web.py (reseller host names), roles/webmail.py (root)",
    "tls.provided": "roles/certificates.py",
    "dns": "the Pulumi program (zones, records), the lab's DNS",
    "dns.resolver": "roles/unbound.py",
    "mailstore": "roles/dovecot.py, roles/postfix.py (LMTP concurrency), roles/panel.py "
    "(retention)",
    "database": "roles/patroni.py (roles/postgresql.py in the single profile)",
    "valkey": "roles/valkey.py",
    "valkey.policy": "roles/valkey.py",
    "valkey.filters": "roles/valkey.py",
    "valkey.sentinel": "roles/valkey.py (Sentinel), the policy service and rspamd (failover)",
    "monitoring": "roles/monitoring.py (Prometheus, Alertmanager)",
    "monitoring.alerts": "roles/monitoring.py (mailstack.services.alert_rules)",
    "monitoring.alerts.service_down": "roles/monitoring.py (alert ServiceDown)",
    "monitoring.alerts.mail_queue": "roles/monitoring.py (alerts MailQueueLarge, DeferredMailOld)",
    "monitoring.alerts.replication": "roles/monitoring.py (alerts PostgreSQLReplicationLag, "
    "PostgreSQLStandbyMissing)",
    "monitoring.alerts.disk": "roles/monitoring.py (alerts DiskSpaceLow, DiskSpaceCritical)",
    "monitoring.alerts.mail_volume": "roles/monitoring.py (alert MailVolumeFilling)",
    "monitoring.alerts.valkey_memory": "roles/monitoring.py (alert ValkeyMemoryHigh)",
    "monitoring.alerts.certificates": "roles/monitoring.py (alert CertificateExpiresSoon)",
    "monitoring.alerts.backup": "roles/monitoring.py (alert BackupTooOld)",
    "monitoring.alerts.outbound": "roles/monitoring.py (alerts OutboundRefusalsSpike, "
    "MailboxOutboundRefusals)",
    "monitoring.notifications": "roles/monitoring.py (Alertmanager), roles/postfix.py (the "
    "alerts' sender)",
    "failover": "roles/pacemaker.py (the mailstore and mx clusters, their fence and volume agents)",
    "web": "roles/panel.py, roles/webmail.py, roles/nginx.py",
    "backups": "roles/backup.py (mailstack.services.backup), roles/pgbackrest.py "
    "(mailstack.services.pgbackrest), mailstack/secretcopy.py (the secrets' copy, after each "
    "whole deploy), `mailstack backup status`",
    "backups.target": "roles/backup.py and roles/pgbackrest.py (repositories, SSH key and host "
    "key), the lab's storage account (roles/internet.py)",
    "backups.mail": "roles/backup.py (timer, retention)",
    "backups.valkey": "roles/backup.py (the db nodes' timer, retention)",
    "tracing": "roles/tracing.py (rsyslog's queue), roles/panel.py (the retention, "
    "`mailstack-panel trace purge`)",
    "backups.database": "roles/pgbackrest.py (schedule, retention), roles/patroni.py "
    "(archive_mode, archive_command, archive_timeout)",
}
"""Who reads each section: a section missing here fails `make docs` (and the docs test)."""


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return " / ".join(repr(arg) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        return _validated_name(meta) or _type_name(base)
    if origin in (list, dict):
        args = ", ".join(_type_name(arg) for arg in typing.get_args(annotation))
        return f"{origin.__name__}[{args}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _validated_name(metadata) -> str | None:
    """'domain name' or 'name' for the FQDN and Slug types of mailstack.settings.base."""
    for item in metadata:
        func = getattr(item, "func", None)
        if func is not None and func.__name__ == "_check_fqdn":
            return "domain name"
        if func is not None and func.__name__ == "_check_slug":
            return "name"
    return None


def _field_type(field) -> str:
    name = _type_name(field.annotation)
    return _validated_name(field.metadata) or name


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        value = [item.model_dump(mode="json") for item in value]
    elif isinstance(value, dict):
        value = {
            key: item.model_dump(mode="json") if isinstance(item, BaseModel) else item
            for key, item in value.items()
        }
    return "`" + json.dumps(value, default=str) + "`"


def _nested_models(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found += _nested_models(arg)
    return found


def render(root: type[BaseModel]) -> str:
    sections: list[str] = [HEADER]
    queue: list[tuple[str, type[BaseModel]]] = [("", root)]
    done: set[str] = set()
    while queue:
        path, model = queue.pop(0)
        if path in done:
            continue
        done.add(path)
        title = f"`{path}`" if path else "Top level"
        doc = (model.__doc__ or "").strip().splitlines()[0]
        if path not in READ_BY:
            raise KeyError(f"settings section {path or 'top level'!r} has no READ_BY entry")
        doc += f" Read by {READ_BY[path]}."
        rows = ["| field | type | default | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            description = field.description
            if field.examples:
                description += " Example: " + ", ".join(
                    "`" + json.dumps(example, default=str) + "`" for example in field.examples
                )
            rows.append(f"| `{name}` | {_field_type(field)} | {_default(field)} | {description} |")
            for nested in _nested_models(field.annotation):
                child = f"{path}.{name}" if path else name
                if typing.get_origin(field.annotation) is dict:
                    child += ".<name>"
                elif typing.get_origin(field.annotation) is list:
                    child += "[]"
                queue.append((child, nested))
        sections.append(f"## {title}\n\n{doc}\n\n" + "\n".join(rows) + "\n")
    return "\n".join(sections)
