"""The deploy side: what pyinfra roles know and how they change hosts.

- `deployment`: everything roles read about the environment (settings, the inventory contract,
  secrets), and the facts derived from it, each computed in one place;
- `configfile`: a configuration file a service reads, rendered from its template by a pure
  function of the deployment (so every template is tested without a host);
- `kit`: the pyinfra side: install a service's files, check them with the service's own checker,
  and only then restart or reload it;
- `runner`: the one way to start pyinfra on an environment.
"""
