"""wifiprov: open WiFi provisioning for Linux devices, wire-compatible with Blynk.Edgent."""

__version__ = "0.1.0"
