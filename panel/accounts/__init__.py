"""Account data: resellers, domains, mailboxes and forwardings, and the SQL views mail services read."""
