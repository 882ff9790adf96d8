"""The virtual air: a shared, inspectable WiFi world for sim radios and sim phones (demo, tests).

``air`` holds the world (a folder of JSON files), ``watch`` tells when it changes (inotify),
``phone`` is the phone side. The device's sim radio is ``wifiprov.device.radio.sim``.
"""
