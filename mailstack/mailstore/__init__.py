"""Code that runs on the mailstore nodes (from the venv roles/venv.py installs there)."""
