"""Phone-side WiFi: find devices' access points, join one, leave it."""

from wifiprov.provisioner.wifi.base import JoinFailed, PhoneWifi

__all__ = ["JoinFailed", "PhoneWifi"]
