"""Pulumi entry point: builds the environment described by the selected stack's settings."""

from mailstack.cloud.program import run

run()
