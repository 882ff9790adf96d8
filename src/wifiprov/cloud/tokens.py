"""Secret tokens: how they are made, and the keyed hash that is all the database ever holds."""

from __future__ import annotations

import hashlib
import hmac
import secrets as pysecrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from wifiprov.cloud.db import Database
from wifiprov.cloud.db.schema import secrets

TOKEN_LENGTH = 32


def new_token() -> str:
    """32 URL-safe characters from 24 random bytes, as Blynk's own servers make auth tokens."""
    return pysecrets.token_urlsafe(24)


def last4(token: str) -> str:
    return token[-4:]


class TokenHasher:
    """HMAC-SHA256 under a key kept in the database, shared by every node of one cloud."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, token: str | bytes) -> str:
        data = token.encode("utf-8") if isinstance(token, str) else token
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()

    @property
    def cloud_id(self) -> str:
        """A name for this cloud that every node sharing its database derives alike."""
        return hmac.new(self._key, b"cloud-id", hashlib.sha256).hexdigest()[:12]

    @classmethod
    async def load(cls, db: Database) -> TokenHasher:
        """The cloud's key, created on first start (the first writer wins when nodes race)."""
        async with db.begin() as conn:
            key = await conn.scalar(select(secrets.c.value).where(secrets.c.name == "token_key"))
        if key is None:
            try:
                async with db.begin() as conn:
                    await conn.execute(
                        secrets.insert().values(name="token_key", value=pysecrets.token_hex(32))
                    )
            except IntegrityError:  # another node inserted it first
                pass
            async with db.begin() as conn:
                key = await conn.scalar(
                    select(secrets.c.value).where(secrets.c.name == "token_key")
                )
        if key is None:
            raise RuntimeError("the cloud's token key could not be created")
        return cls(bytes.fromhex(key))
