"""The provisioner: what Blynk's phone app does, as a Python flow with a CLI front end."""
