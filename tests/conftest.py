"""Fixtures shared by the whole suite."""

pytest_plugins = ["mailstack.lab.pytest_plugin"]
