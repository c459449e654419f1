"""mailstack: a provider-grade e-mail platform as infrastructure as code."""
