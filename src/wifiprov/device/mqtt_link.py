"""The device's cloud link over Blynk's MQTT device API (aiomqtt, on paho-mqtt 2.x).

``MqttLink`` has the interface the agent uses for ``link.CloudLink`` (``open``, ``run``,
``close``, ``virtual_write``, ``send_meta``, ``send_console_reply``, ``ping_ms``) and fails with
the same ``LinkError`` codes: 710 when the host name does not resolve, 711 when TLS fails (a
certificate that does not verify, a handshake that breaks), 702 when the cloud refuses the
connection or does not answer in time, 703 when it rejects the token (CONNACK 4 or 5 in MQTT
3.1.1, reason 0x86 / 0x87 in MQTT 5), 705 for anything else. The agent's reconnect rules do not
change: they live in the state machine, which sees the same events from either link.

It logs in as user ``device`` with the token as the password (MQTT 3.1.1, clean session,
keepalive = the heartbeat), publishes ``info/mcu`` (JSON ``tmpl``, ``ver``, ``build``, ``type``,
``rxbuff``, as Blynk's MQTT libraries do; first, because a provisioning token's claim waits for
it), subscribes to ``downlink/#`` and publishes the meta fields (``meta/<field>``).

What the cloud sends: ``downlink/ds/<name>`` reaches the agent's pin-write handlers when the
name is ``V<pin>`` (the device knows pins, not names: a template's datastream must be named
``V1`` ... for its pin to reach an MQTT-linked agent); ``downlink/diag`` and
``downlink/redirect`` are logged (a redirect is not followed: the agent's next connection goes
to its configured host, as after any lost connection). ``downlink/reboot`` is the cloud's
"Reboot": it goes to the agent as the console command ``reboot``, exactly as the Blynk link's
INTERNAL ``dbg reboot`` does (the agent restarts, re-reading its stored configuration: nothing
is lost). ``downlink/ping`` needs nothing here: paho acknowledges the QoS 1 message (PUBACK),
which is the answer the cloud waits for. ``downlink/reconfigure`` (Blynk's "Reconfigure") goes
to the agent as the console command ``config start``, as the Blynk link's INTERNAL ``dbg config
start`` does: back to setup mode, the configuration kept. Blynk's MQTT API has no console channel
(no INTERNAL ``dbg``), so the cloud console's other commands do not reach an MQTT-linked device.
``send_console_reply`` is therefore a no-op here. ``virtual_write(pin, ...)`` publishes
``ds/V<pin>`` (NUL between multi-values).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import time
from typing import Any

import aiomqtt
from aiomqtt import MqttCodeError, MqttError

from wifiprov.device.link import LinkCallbacks, LinkError, LinkSettings
from wifiprov.wire.errors import ProvisioningError as E

log = logging.getLogger("wifiprov.device.mqtt_link")
# aiomqtt's own messages (paho's at DEBUG: packet kinds, never the password). Its one warning,
# "Could not gracefully disconnect", follows every failed attempt, already reported as a
# LinkError: kept out of the log.
client_log = logging.getLogger("wifiprov.device.mqtt_link.client")
client_log.setLevel(logging.ERROR)

USERNAME = "device"
DEFAULT_MQTT_PORT, DEFAULT_MQTT_PORT_SSL = 1883, 8883
REJECTED = frozenset({4, 5, 0x86, 0x87})  # CONNACK codes (3.1.1) and reasons (5): bad token
MAX_REDIRECTS = 5


class MqttLink:
    """One MQTT connection to the cloud; built anew for every attempt, as CloudLink is."""

    def __init__(self, settings: LinkSettings, callbacks: LinkCallbacks | None = None) -> None:
        self.settings = settings
        self.callbacks = callbacks or LinkCallbacks()
        self.host = settings.host
        self.tls = settings.port_ssl is not None
        port = settings.port_ssl if settings.port_ssl is not None else settings.port
        self.port: int = port or (DEFAULT_MQTT_PORT_SSL if self.tls else DEFAULT_MQTT_PORT)
        self.ping_ms: float | None = None
        self._client: aiomqtt.Client | None = None
        self._up = False  # CONNACK accepted: close() sends DISCONNECT

    # --- connecting ---
    async def open(self, timeout: float) -> None:
        """Connect and log in; LinkError with a provisioning code on failure."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                await self._resolve()
                await self._connect()
                assert self._client is not None
                # info/mcu first: a provisioning token's claim waits for it (docs/cloud.md)
                await self._client.publish("info/mcu", self._info(), qos=1)
                await self._client.subscribe("downlink/#", qos=1)
                for name, value in self.settings.meta.items():
                    await self._client.publish(f"meta/{_level(name)}", value.encode(), qos=0)
        except TimeoutError:
            await self.close()
            raise LinkError(E.CLOUD_TIMEOUT, f"no answer from {self.host}:{self.port}") from None
        except LinkError:
            await self.close()
            raise
        except MqttError as exc:
            await self.close()
            raise LinkError(E.CLOUD_OTHER, f"login failed: {exc}") from None
        self.ping_ms = (time.monotonic() - started) * 1000

    async def _resolve(self) -> None:
        try:
            await asyncio.get_running_loop().getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError) as exc:
            raise LinkError(E.DNS_FAILED, f"cannot resolve {self.host!r}: {exc}") from None

    async def _connect(self) -> None:
        ctx = ssl.create_default_context(cafile=self.settings.ca_file) if self.tls else None
        client = aiomqtt.Client(
            self.host,
            self.port,
            username=USERNAME,
            password=self.settings.token,
            identifier="",
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=True,
            keepalive=max(1, self.settings.heartbeat),
            tls_context=ctx,
            timeout=None,
            logger=client_log,
        )
        self._client = client
        try:
            await client.__aenter__()
            self._up = True
        except MqttCodeError as exc:
            code = getattr(exc.rc, "value", exc.rc)
            if code in REJECTED:
                raise LinkError(
                    E.TOKEN_REJECTED, f"the cloud rejected the token ({code})"
                ) from None
            raise LinkError(E.CLOUD_OTHER, f"login failed: {exc}") from None
        except MqttError as exc:
            raise _socket_error(exc, self.host, self.port) from None

    def _info(self) -> bytes:
        info = self.settings.info
        data: dict[str, Any] = {
            "tmpl": info.get("tmpl", ""),
            "ver": info.get("mcu", ""),
            "build": info.get("build", ""),
            "type": info.get("fw-type", ""),
            "rxbuff": self.settings.buffer_in,
        }
        if info.get("dev"):
            data["dev"] = info["dev"]
        return json.dumps(data).encode()

    # --- serving ---
    async def run(self) -> str:
        """Serve the connection until it is lost; returns the reason in words. The connection
        is closed when this returns; it raises only CancelledError."""
        client = self._client
        if client is None:
            return "closed"
        try:
            async for message in client.messages:
                reason = self._handle(str(message.topic), _payload(message.payload))
                if reason:
                    await self.close()
                    return reason
        except MqttError as exc:
            await self.close()
            return f"connection lost: {exc}"
        except Exception as exc:  # nothing the cloud sends may kill the caller's task
            log.exception("the cloud link failed unexpectedly")
            await self.close()
            return f"link failure: {exc or type(exc).__name__}"
        await self.close()
        return "the cloud closed the connection"

    def _handle(self, topic: str, payload: bytes) -> str | None:
        levels = topic.split("/")
        text = payload.decode("utf-8", "replace")
        if levels[:2] == ["downlink", "ds"] and len(levels) == 3:
            name = levels[2]
            if name[:1] in "Vv" and name[1:].isascii() and name[1:].isdigit() and len(name) <= 6:
                self._callback(self.callbacks.on_write, int(name[1:]), text.split("\0"))
            else:
                log.info("a write to datastream %r, which names no pin: ignored", name[:64])
        elif topic == "downlink/redirect":
            log.warning("the cloud redirects to %r: not followed over MQTT", text[:80])
        elif topic == "downlink/diag":
            log.info("the cloud says: %s", text[:200])
        elif topic == "downlink/reboot":
            log.info("the cloud asks for a reboot")
            self._callback(self.callbacks.on_console, "reboot")
        elif topic == "downlink/reconfigure":
            log.info("the cloud asks for a reconfigure")
            self._callback(self.callbacks.on_console, "config start")
        elif topic == "downlink/ping":
            log.debug("the cloud pings (acknowledged by the client library)")
        return None

    def _callback(self, func: Any, *args: object) -> None:
        try:
            func(*args)
        except Exception:
            log.exception("a cloud link callback failed")

    def _publish(self, topic: str, payload: bytes) -> None:
        client = self._client
        if client is None:
            return
        # paho's publish only queues (its network loop writes): safe to call without awaiting
        try:
            client._client.publish(topic, payload, qos=0)
        except (ValueError, OSError) as exc:
            log.info("could not publish %s: %s", topic, exc)

    def virtual_write(self, pin: int, *values: str | int | float) -> None:
        self._publish(f"ds/V{pin}", "\0".join(str(v) for v in values).encode())

    def send_meta(self, name: str, value: str) -> None:
        self._publish(f"meta/{_level(name)}", value.encode())

    def send_console_reply(self, text: str) -> None:
        """Blynk's MQTT API has no console channel: nothing is sent."""

    async def close(self) -> None:
        """Disconnect (a DISCONNECT when logged in, at most 1 s), then close the socket."""
        client, self._client = self._client, None
        up, self._up = self._up, False
        if client is None:
            return
        if up:
            try:
                await asyncio.wait_for(client.__aexit__(None, None, None), 1)
            except (MqttError, OSError, TimeoutError):
                pass
        paho = client._client
        if paho.socket() is not None:
            # paho's own close: aiomqtt then stops watching the socket (on_socket_close)
            try:
                paho._sock_close()
            except OSError:
                pass


def _socket_error(exc: MqttError, host: str, port: int) -> LinkError:
    """aiomqtt turns paho's socket errors into MqttError(str) ``from None``; the original is
    still its ``__context__``."""
    cause = exc.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return LinkError(E.TLS_REJECTED, f"{host}'s certificate: {cause.verify_message}")
    if isinstance(cause, ssl.SSLError):
        return LinkError(E.TLS_REJECTED, f"TLS with {host} failed: {cause}")
    if isinstance(cause, socket.gaierror):
        return LinkError(E.DNS_FAILED, f"cannot resolve {host!r}: {cause}")
    if isinstance(cause, OSError):
        why = cause.strerror or str(cause)
        return LinkError(E.CLOUD_TIMEOUT, f"cannot connect to {host}:{port}: {why}")
    return LinkError(E.CLOUD_TIMEOUT, f"cannot connect to {host}:{port}: {exc}")


def _payload(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()


def _level(name: str) -> str:
    """A meta field's name as one topic level."""
    return "".join(c for c in name if c not in "/+#\0")[:64] or "_"
