"""The home page and the organization switcher."""

from __future__ import annotations

from fastapi.responses import Response

from wifiprov.cloud.console import kit, sessions

router = kit.router()


@router.get("/")
async def home(page: kit.Page) -> Response:
    return page.render("home.html", title="Home")


@router.post("/org")
async def switch_org(page: kit.Page) -> Response:
    """Make another of the user's organizations the current one (kept in a cookie)."""
    form = await page.form()
    chosen = form.get("org_id", "")
    if not any(str(org["id"]) == chosen for org in page.orgs):
        return page.render(
            "error.html", 404, title="Not found", message="There is no such organization."
        )
    response = page.redirect(kit.local_path(form.get("next")))
    sessions.set_cookie(response, page.request, sessions.ORG_COOKIE, chosen, sessions.YEAR)
    return response
