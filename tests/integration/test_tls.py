"""The gateway over TLS: a certificate the device verifies, and port_ssl handed to devices."""

from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path

import blynklib

from tests.conftest import start_cloud, stop_cloud, with_owner
from tests.integration.support import provisioning_token, server_certificate, template
from wifiprov.cloud.settings import CloudSettings
from wifiprov.wire import blynk
from wifiprov.wire.blynk import Command, Status


async def test_tls_gateway_with_a_verifying_client(db_url: str, tmp_path: Path) -> None:
    server_certificate(tmp_path)
    settings = CloudSettings(
        db_url=db_url,
        http=("127.0.0.1", 0),
        gateway=("127.0.0.1", 0),
        gateway_tls=("127.0.0.1", 0),
        cert=tmp_path / "server.pem",
        key=tmp_path / "server.pem",
        public_host="localhost",
    )
    cloud, task = await start_cloud(settings)
    try:
        rc = await with_owner(cloud)
        tls_port = cloud.gateway.addresses()[1][1]
        request = await provisioning_token(rc, await template(rc))
        assert request["port_ssl"] == tls_port and request["port"] == rc.gateway[1]

        # A raw TLS device verifying the chain.
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", tls_port, ssl=ctx, server_hostname="localhost"
        )
        writer.write(blynk.encode(Command.HW_LOGIN, 1, request["token"]))
        assert await reader.readexactly(5) == blynk.encode_response(1, Status.OK)
        writer.close()

        # blynklib, unchanged, with its ssl_cert option (CERT_REQUIRED).
        outcome: list[object] = []
        client = blynklib.Blynk(
            request["token"], server="localhost", port=tls_port, ssl_cert=str(tmp_path / "ca.pem")
        )
        thread = threading.Thread(target=lambda: outcome.append(client.connect(timeout=10)))
        thread.start()
        await asyncio.to_thread(thread.join, 20)
        assert outcome == [True]
        client.disconnect()

        # A client that does not trust our CA is refused by its own verification.
        strict = ssl.create_default_context()
        try:
            await asyncio.open_connection(
                "127.0.0.1", tls_port, ssl=strict, server_hostname="localhost"
            )
            raise AssertionError("an untrusted certificate was accepted")
        except ssl.SSLCertVerificationError:
            pass
    finally:
        await stop_cloud(cloud, task)
