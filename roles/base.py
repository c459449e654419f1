"""What every host gets before its services (mailstack.deploy.kit.base_files)."""

from mailstack.deploy.kit import base_files, install

for config in base_files():
    install(config, "every host")
