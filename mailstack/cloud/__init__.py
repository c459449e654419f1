"""The Pulumi program that provisions an environment on Hetzner Cloud."""
