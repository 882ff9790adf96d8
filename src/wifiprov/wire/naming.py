"""The device / AP name rule of Blynk.Edgent (PROTOCOLS.md section 2, "Device / AP name").

A device calls itself ``<prefix> <template name>-<code>``. The 4-character ``code`` comes from the
chip id: CRC-32 of the id bytes repeated four times, written in base 24, least significant digit
first, with a shuffled alphabet; a character equal to the one before it is replaced by the next
character of the alphabet (wrapping). Names are cut to a byte limit by shortening the template name
(``ap_name``: classic Edgent) or by a priority rule (``ble_name``: Edgent-Arduino).

Lengths are counted in UTF-8 bytes, as the firmware's ``String`` does; unlike the firmware we never
cut inside a multi-byte character.
"""

from __future__ import annotations

import zlib

CLASSIC_ALPHABET = "0W8N4Y1HP5DF9K6JM3C2UA7R"  # classic Edgent (blynk-library examples)
NEWER_ALPHABET = "0W8N4Y1HP5DF9K6JM3C2XA7R"  # Edgent-Arduino: U replaced by X
CODE_LENGTH = 4
DEFAULT_PREFIX = "Blynk"
AP_NAME_LIMIT = 31  # classic Edgent: the AP name; an SSID may hold 32 bytes
BLE_NAME_LIMIT = 29  # Edgent-Arduino: BLE advertising payload (also its AP name)


def chip_crc(chip_id: bytes) -> int:
    """CRC-32 of ``chip_id`` four times, each round chained on the last (== crc32(id * 4))."""
    return zlib.crc32(chip_id * 4)


def encode_code(n: int, alphabet: str = CLASSIC_ALPHABET, length: int = CODE_LENGTH) -> str:
    """``n`` in base ``len(alphabet)``, least significant digit first (``encodeUniquePart``)."""
    base = len(alphabet)
    out: list[str] = []
    prev = ""
    while len(out) < length:
        c = alphabet[n % base]
        if c == prev:  # no two equal characters in a row: take the next one, wrapping
            c = alphabet[(n + 1) % base]
        out.append(c)
        prev = c
        n //= base
    return "".join(out)


def chip_code(chip_id: bytes, alphabet: str = CLASSIC_ALPHABET) -> str:
    """The 4-character code of a chip id, e.g. ``W8FH`` for the MAC 24:6F:28:AA:BB:CC."""
    return encode_code(chip_crc(chip_id), alphabet)


def mac_chip_id(mac: str) -> bytes:
    """The chip id wifiprov uses on Linux: the 6 bytes of an interface MAC, in written order.

    ``"24:6F:28:AA:BB:CC"`` (also with ``-`` or no separators) gives
    ``bytes.fromhex("246f28aabbcc")``.
    ESP8266 firmware hashes exactly these 6 bytes. ESP32 firmware hashes the 8-byte eFuse MAC as a
    little-endian uint64 instead, whose bytes are the 6 MAC bytes followed by two zero bytes, so an
    ESP32 with the same MAC shows a different code. We use the 6-byte form of the wireless
    interface's MAC.
    """
    digits = mac.replace(":", "").replace("-", "")
    if len(digits) != 12 or not all(c in "0123456789abcdefABCDEF" for c in digits):
        raise ValueError(f"not a MAC address: {mac!r}")
    return bytes.fromhex(digits)


def cut_utf8(text: str, limit: int) -> str:
    """The longest start of ``text`` whose UTF-8 form has at most ``limit`` bytes."""
    if limit <= 0:
        return ""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    # Step back over continuation bytes (10xxxxxx) so no character is split.
    end = limit
    while end > 0 and data[end] & 0xC0 == 0x80:
        end -= 1
    return data[:end].decode("utf-8", "surrogatepass")


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def ap_name(prefix: str, template_name: str, code: str, limit: int = AP_NAME_LIMIT) -> str:
    """Classic Edgent's AP name (``getWiFiName``): ``<prefix> <template name>-<code>``.

    Only the template name is shortened, to ``limit - len(prefix) - 2 - len(code)`` bytes (the
    firmware's ``31-6-prefixLen``). An empty template name still gives ``"<prefix> -<code>"``, as
    the firmware does. Raises ValueError when prefix and code alone do not fit.
    """
    room = limit - _size(prefix) - 2 - _size(code)
    if room < 0:
        raise ValueError(f"prefix {prefix!r} and code {code!r} do not fit in {limit} bytes")
    return f"{prefix} {cut_utf8(template_name, room)}-{code}"


def ble_name(prefix: str, template_name: str, code: str, limit: int = BLE_NAME_LIMIT) -> str:
    """Edgent-Arduino's device name (``systemGetFullName``), used for BLE and for its AP.

    Within ``limit`` bytes the prefix comes first, then ``-<code>`` (the code may be shortened),
    then `` <template name>`` with whatever room is left. The template name is left out when it
    equals the prefix or when none of it fits. The newer firmware's AP takes this same name
    (cut to 31, which never bites), so its AP names are at most 29 bytes too.
    """
    result = cut_utf8(prefix, limit)
    budget = limit - _size(result)
    code_len = min(len(code), max(budget - 1, 0))
    if code_len:
        budget -= code_len + 1
    if template_name != prefix:
        sep = 1 if result else 0
        name = cut_utf8(template_name, budget - sep)
        if name:
            result += (" " if sep else "") + name
    if code_len:
        result += ("-" if result else "") + code[:code_len]
    return result
