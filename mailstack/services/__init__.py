"""One module per service: the names it shares with its clients, and the files it reads.

Each module holds the constants both sides of a service must agree on (ports, paths, role and
secret names) and, for services the platform configures, `config_files(deployment, host)`: every
file the service reads, rendered by a pure function of the deployment (mailstack.deploy), with
the checker (`CHECK`) the role runs before a restart (a role that configures several units
has a function per unit, and `config_files` gives them all). Roles (roles/<service>.py) install them;
tests/unit/test_templates.py renders and checks them for every stack.
"""
