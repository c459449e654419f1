"""Failover machinery that runs on the platform's hosts: fencing and volume moves through the
Hetzner Cloud API (`hetzner`), and its operator commands (`mailstack cloud`)."""
