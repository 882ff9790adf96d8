"""The device agent: what runs on the device."""
