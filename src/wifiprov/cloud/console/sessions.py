"""Console sessions and CSRF tokens.

A signed-in browser holds an API session token (``accounts.sign_in``) in an HttpOnly cookie,
so the console's sessions are the API's: same idle and absolute lifetimes, ended by sign-out and
by removing the member. The cookie is SameSite=Lax (Strict would drop it when a person arrives
from a link elsewhere, such as the device's setup page sending the phone back to the console)
and Secure when the request came over https.

A form's CSRF token is derived from a secret the browser holds only as an HttpOnly cookie,
keyed with the cloud's token key: the session token for a signed-in browser, else a random
pre-session cookie (sign-in and first-run sign-up forms). Nothing is stored; a token dies with its
session, and a page of another site can neither read nor compute it.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from wifiprov.cloud.tokens import TokenHasher, new_token

SESSION_COOKIE = "wifiprov_session"
ORG_COOKIE = "wifiprov_org"
PRE_COOKIE = "wifiprov_pre"
CSRF_FIELD = "csrf"
YEAR = 365 * 24 * 3600


def csrf_token(hasher: TokenHasher, secret: str) -> str:
    """The CSRF token of forms shown to the holder of ``secret`` (a session or pre-session)."""
    return hasher("console-csrf\0" + secret)


def csrf_matches(hasher: TokenHasher, secret: str | None, sent: str | None) -> bool:
    if not secret or not sent:
        return False
    return hmac.compare_digest(csrf_token(hasher, secret), sent)


def set_cookie(
    response: Response, request: Request, name: str, value: str, max_age: int | None = None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def forget_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https"
    )


def pre_session(request: Request) -> tuple[str, bool]:
    """This browser's pre-session secret, and whether it is new (then set it with the page)."""
    found = request.cookies.get(PRE_COOKIE)
    if found and len(found) <= 64:
        return found, False
    return new_token(), True
