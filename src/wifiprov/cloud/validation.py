"""What the HTTP API accepts, so that no input reaches the database or a device that either
cannot carry.

- Ids are the database's INTEGER (PostgreSQL's int4 is the narrower of the two): anything
  outside it is refused before a query (Python ints have no limit; drivers overflow).
- Text is valid Unicode: JSON may spell a lone surrogate (``"\\ud800"``), which no database
  and no UTF-8 wire can store.
- NUL is never accepted: PostgreSQL text cannot hold it, and it is the Blynk protocol's
  argument separator (a pin value ``"a\\0b"`` would reach the device as two values).
- Names, e-mails, roles and host names are one line: no control characters at all.
- Lengths are the columns' in ``db/schema.py``, so SQLite (which does not enforce them) and
  PostgreSQL (which fails) store the same thing.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, Field
from sqlalchemy import Column, String

from wifiprov.cloud.db.schema import devices as devices_table
from wifiprov.cloud.db.schema import memberships, organizations, templates, users

DB_INT_MAX = 2**31 - 1  # INTEGER on PostgreSQL; SQLite's is wider
MAX_PORT = 65535
HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
MAX_HOST = 253


def column_length(column: Column[str]) -> int:
    """The declared length of a String column (what PostgreSQL enforces)."""
    assert isinstance(column.type, String) and column.type.length is not None
    return column.type.length


def _has_surrogate(value: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in value)


def text(value: str) -> str:
    """Any valid Unicode without NUL (pin values, passwords)."""
    if _has_surrogate(value):
        raise ValueError("not valid Unicode (a lone surrogate)")
    if "\0" in value:
        raise ValueError("NUL characters are not allowed")
    return value


def line(value: str) -> str:
    """One line of printable text: no control characters (names, e-mails, roles)."""
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise ValueError("control characters (NUL, tab, newline, ...) are not allowed")
    return text(value)


def host(value: str) -> str:
    """A host name (letters, digits, '-' in dot-separated labels) or an IP address."""
    line(value)
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    labels = value.split(".")
    if len(value) > MAX_HOST or not all(HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError("a host name (letters, digits, '-' and '.') or an IP address")
    return value


def _line_of(column: Column[str]) -> object:
    return Field(max_length=column_length(column))


Text = Annotated[str, AfterValidator(text)]
Password = Text
Email = Annotated[str, _line_of(users.c.email), AfterValidator(line)]
Role = Annotated[str, _line_of(memberships.c.role), AfterValidator(line)]
OrgName = Annotated[str, _line_of(organizations.c.name), AfterValidator(line)]
HotspotPrefix = Annotated[str, _line_of(organizations.c.hotspot_prefix), AfterValidator(line)]
TemplateName = Annotated[str, _line_of(templates.c.name), AfterValidator(line)]
FirmwareType = Annotated[str, _line_of(templates.c.firmware_type), AfterValidator(line)]
Description = Annotated[
    str, Field(max_length=column_length(templates.c.description)), AfterValidator(text)
]
DeviceName = Annotated[str, _line_of(devices_table.c.name), AfterValidator(line)]
Host = Annotated[str, Field(min_length=1, max_length=MAX_HOST), AfterValidator(host)]
Port = Annotated[int, Field(ge=1, le=MAX_PORT)]

# Path parameters
RowId = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="an id (1 to 2^31-1)")]
EmailPath = Annotated[
    str, Path(min_length=1, max_length=column_length(users.c.email)), AfterValidator(line)
]
TemplateId = Annotated[
    str, Path(min_length=1, max_length=column_length(templates.c.id), pattern=r"^[A-Za-z0-9]+$")
]
