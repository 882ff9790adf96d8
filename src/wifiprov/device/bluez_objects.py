"""The D-Bus objects of the Inject GATT application and its advertisement, for BlueZ
(``org.bluez.GattService1``, ``GattCharacteristic1``, ``LEAdvertisement1``), with dbus-fast.
Imported only when BLE runs on BlueZ (``device/ble.py``'s ``BluezGatt``)."""

# mypy: ignore-errors
# ruff: noqa: N802, F722, F821, UP037 -- D-Bus names; dbus-fast reads signatures from annotations

from collections.abc import Callable
from typing import Any

from dbus_fast import PropertyAccess, Variant
from dbus_fast.service import ServiceInterface, dbus_property, method


class Service(ServiceInterface):
    def __init__(self, path: str, uuid: str) -> None:
        super().__init__("org.bluez.GattService1")
        self.path, self._uuid = path, uuid

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":
        return self._uuid

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> "b":
        return True


class Characteristic(ServiceInterface):
    def __init__(
        self,
        path: str,
        uuid: str,
        service: str,
        flags: list[str],
        on_write: Callable[[bytes, str], None] | None,
    ) -> None:
        super().__init__("org.bluez.GattCharacteristic1")
        self.path, self._uuid, self._service, self._flags = path, uuid, service, flags
        self._on_write = on_write
        self._value = b""
        self.notifying = False

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":
        return self._uuid

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> "o":
        return self._service

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> "as":
        return self._flags

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> "ay":
        return self._value

    @method()
    def ReadValue(self, options: "a{sv}") -> "ay":
        return self._value

    @method()
    def WriteValue(self, value: "ay", options: "a{sv}"):
        if self._on_write is not None:
            device: Any = options.get("device")
            self._on_write(bytes(value), device.value if isinstance(device, Variant) else "")

    @method()
    def StartNotify(self):
        self.notifying = True

    @method()
    def StopNotify(self):
        self.notifying = False

    def notify(self, value: bytes) -> None:
        """A notification: BlueZ sends a change of Value to the subscribed centrals."""
        self._value = value
        if self.notifying:
            self.emit_properties_changed({"Value": value})


class Advertisement(ServiceInterface):
    def __init__(self, path: str, name: str, service_uuid: str) -> None:
        super().__init__("org.bluez.LEAdvertisement1")
        self.path, self._name, self._uuid = path, name, service_uuid

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> "s":
        return "peripheral"

    @dbus_property(access=PropertyAccess.READ)
    def ServiceUUIDs(self) -> "as":
        return [self._uuid]

    @dbus_property(access=PropertyAccess.READ)
    def LocalName(self) -> "s":
        return self._name

    @dbus_property(access=PropertyAccess.READ)
    def Discoverable(self) -> "b":
        return True

    @dbus_property(access=PropertyAccess.READ)
    def MinInterval(self) -> "u":
        return 100  # ms, as Blynk's library advertises

    @dbus_property(access=PropertyAccess.READ)
    def MaxInterval(self) -> "u":
        return 100

    @method()
    def Release(self):
        pass
