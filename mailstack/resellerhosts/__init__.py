"""Resellers' own host names on a web node, without a deploy (white-labelling).

A reseller names its panel and webmail host names in the panel (the account data refuses a
name another reseller or the platform holds); it points them at the platform's HTTP balancer.
Every minute a systemd timer on each web node runs `python -m mailstack.resellerhosts`, which
reads the enabled resellers' names and brands from the account database and:

- writes webmail's brand file (host name -> brand name, colours, logo), which Roundcube's
  `mailstack` plugin reads at each request;
- orders a certificate per reseller for its names from the platform's ACME server, through the
  same per-node certbot path and http-01 answerer as the platform's own names (any node answers
  any node's challenge), under the deploy's certbot lock; a failed order is retried after a
  growing pause (5 minutes, doubling up to 6 hours), never every minute;
- writes an nginx server block per name its certificate covers (the panel's or webmail's site
  snippet behind the node's listen snippet), checks nginx's configuration and reloads it;
- removes the blocks and certificates of names no reseller holds any more.

Only where the web nodes terminate TLS themselves (the HTTP balancer passes HTTPS through) and
certificates come from ACME; otherwise the job keeps the brand file only.
"""
