"""A device that reconnects at once after its first login (a lost link, a crashed task) must not
be told its token is invalid while its own claim is being committed: 9 sends a device back to
provisioning, so it is only for a token that really is no good."""

from __future__ import annotations

import pytest

from tests.conftest import RunningCloud
from tests.integration.support import provisioning_token, template
from wifiprov.cloud import devices


async def test_a_login_racing_its_own_claim_finds_the_device(
    cloud: RunningCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    template_id = await template(cloud)
    request = await provisioning_token(cloud, template_id)
    db = cloud.cloud.db
    real = devices.pending_claim
    commits: list[object] = []

    async def claim_commits_in_between(database: object, token_hash: str) -> object:
        # This login's device lookup found nothing; now the first connection's claim commits,
        # before this login looks for a pending claim.
        pending = await real(db, token_hash)
        assert pending is not None
        commits.append(await devices.commit_claim(db, pending, template_id))
        return await real(db, token_hash)

    monkeypatch.setattr(devices, "pending_claim", claim_commits_in_between)
    auth = await cloud.cloud.gateway.logins.authenticate(request["token"].encode())
    assert commits and commits[0] is not None
    assert isinstance(auth, devices.DeviceAuth)  # the device just claimed, not "invalid" (9)


async def test_an_unknown_token_is_still_refused(cloud: RunningCloud) -> None:
    assert await cloud.cloud.gateway.logins.authenticate(b"Q" * 32) is None
