"""The cloud's first owner, organization (hotspot prefix "Blynk") and template "Lamp", written
straight into a new database, and the provisioner's saved session for ``--cloud``, before
``wifiprov cloud`` serves it: what `wifiprov cloud init`, `login` and `templates create` do
(tested elsewhere), in one Python start instead of three (each takes 15-40 s under TCG).

    python cloud_setup.py --db FILE --cloud URL   # prints the template's id
"""

from __future__ import annotations

import argparse
import asyncio

OWNER, PASSWORD = "owner@example.com", "owner password 1"


async def cloud_setup(db: str, cloud: str) -> str:
    from wifiprov import session
    from wifiprov.cloud import accounts, templates
    from wifiprov.cloud.db import Database
    from wifiprov.cloud.tokens import TokenHasher

    database = Database(db)
    try:
        await database.migrate()
        user_id = await accounts.create_user(database, OWNER, PASSWORD)
        org_id = await accounts.create_org(database, "Home", user_id, "Blynk")
        hasher = await TokenHasher.load(database)
        token = await accounts.sign_in(database, hasher, OWNER, PASSWORD)
        who = await accounts.authenticate(database, hasher, token)
        template = await templates.create_template(database, who, org_id, "Lamp")
    finally:
        await database.close()
    session.save(cloud, token, OWNER)
    return str(template["id"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--cloud", required=True)
    args = ap.parse_args()
    print(asyncio.run(cloud_setup(args.db, args.cloud)))


if __name__ == "__main__":
    main()
