"""The cloud: accounts, templates, provisioning, devices, the device gateway and the HTTP API."""
