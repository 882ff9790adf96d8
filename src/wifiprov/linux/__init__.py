"""Linux system services the device and the provisioner use: NetworkManager over D-Bus, who holds
a port. Effects only; the decisions stay in the roles."""
