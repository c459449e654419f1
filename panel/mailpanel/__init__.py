"""The control panel's Django project: settings for the account data and, later, the web UI."""
