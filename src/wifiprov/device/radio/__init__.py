"""The device's WiFi radio: one interface (``base``), backends ``sim`` (now) and ``nm`` (later)."""

from wifiprov.device.radio.base import (
    AP_ADDRESS,
    ApInfo,
    ConnectError,
    ConnectFailure,
    LinkLostCallback,
    Radio,
    RadioStatus,
    ScanEntry,
    StationInfo,
)
from wifiprov.device.radio.factory import RADIO_KINDS, make_radio

__all__ = [
    "AP_ADDRESS",
    "ApInfo",
    "ConnectError",
    "ConnectFailure",
    "LinkLostCallback",
    "Radio",
    "RadioStatus",
    "ScanEntry",
    "StationInfo",
    "RADIO_KINDS",
    "make_radio",
]
