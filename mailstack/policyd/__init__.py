"""The policy service: greylisting and the outbound recipient limit for Postfix.

It speaks Postfix's policy delegation protocol (SMTPD_POLICY_README) and keeps its state in
Valkey, so every mx node shares it. See docs/policyd.md.
"""
