"""Load generators for wifiprov's own services (``wifiprov bench ...``)."""
