"""A person provisions with the setup page alone, in headless Chromium on a phone-sized screen:
a real cloud process, a real device agent process on the sim air, everything on loopback."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlsplit

from tests.browser.conftest import Lab
from tests.browser.portal import PortalPage
from tests.e2e.test_provision_cli import HOME, HOME_PASSWORD
from wifiprov.wire.errors import explain

PROBES = [
    "http://connectivitycheck.gstatic.com/generate_204",  # Android
    "http://captive.apple.com/hotspot-detect.html",  # Apple
    "http://www.msftconnecttest.com/connecttest.txt",  # Windows
]


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


async def provision(tab: PortalPage, ssid: str, password: str) -> None:
    await tab.choose(ssid)
    await tab.fill(**{"pass": password})
    await tab.submit()


async def test_probes_land_on_the_portal_and_a_person_provisions(lab: Lab) -> None:
    device = await lab.device()
    link = await lab.setup_link()
    async with lab.browser(device) as tab:
        for probe in PROBES:
            landed = await tab.open(probe)
            assert landed == f"http://127.0.0.1:{device.port}/", (probe, landed)
            assert await tab.is_portal() and await tab.title() == device.ap
        await tab.screenshot(lab.shots / "1-probe.png")

        assert await tab.open(link) == link
        assert await tab.page.input_value("#blynk") == token_of(link)  # the link filled it in
        assert await tab.page.input_value("#host") == "127.0.0.1"
        networks = await tab.networks()
        assert networks[0]["name"] == HOME and networks[0]["kind"] == "psk"
        assert networks[-1]["other"] == "1"
        assert not await tab.overflows()  # fits a phone's width
        await tab.choose(HOME)
        await tab.fill(**{"pass": HOME_PASSWORD})
        assert await tab.page.get_attribute("#pass", "type") == "password"
        await tab.page.check("#show-pass")
        assert await tab.page.get_attribute("#pass", "type") == "text"
        await tab.screenshot(lab.shots / "2-filled.png")
        await tab.submit()
        result = await tab.result(timeout=90)
        await tab.screenshot(lab.shots / "3-done.png")
        assert result.outcome == "done", (result, device.log_text())
        assert result.steps == {"send": "ok", "wifi": "ok", "cloud": "ok", "done": "ok"}
        assert result.was("wifi", "active")  # the progress was shown on the way
        assert "Done" in result.status and HOME in result.status
        hosts = {urlsplit(url).hostname for url in tab.requests}
        # nothing from the internet: only the probes, the link, and the portal itself
        assert hosts <= {urlsplit(u).hostname for u in [*PROBES, link]} | {"127.0.0.1"}, hosts
        sent = tab.config_requests()
        assert len(sent) == 1 and sent[0]["ssid"] == [HOME] and sent[0]["pass"] == [HOME_PASSWORD]
    devices = await lab.online_devices()
    assert [d["online"] for d in devices] == [True]
    stored = device.stored()
    assert stored.networks[0].ssid == HOME.encode() and stored.token == token_of(link)


async def test_a_wrong_password_is_explained_and_the_form_comes_back(lab: Lab) -> None:
    device = await lab.device()
    link = await lab.setup_link()
    async with lab.browser(device) as tab:
        await tab.open(link)
        await provision(tab, HOME, "not the password")
        failed = await tab.result(timeout=90)
        await tab.screenshot(lab.shots / "wrong-password.png")
        assert failed.outcome == "failed", (failed, device.log_text())
        words = explain(722)
        assert words.what in failed.status and words.todo in failed.status
        assert failed.steps["send"] == "ok" and failed.steps["wifi"] == "bad"
        assert failed.form_enabled and await tab.visible("#pass")
        assert await tab.page.evaluate("() => document.activeElement.id") == "pass"

        await tab.fill(**{"pass": HOME_PASSWORD})  # corrected: the second try works
        await tab.submit()
        done = await tab.result(timeout=90)
        assert done.outcome == "done", (done, device.log_text())
    assert (await lab.online_devices())[0]["online"]


async def test_fields_are_checked_before_sending_and_the_device_refusal_is_shown(lab: Lab) -> None:
    lab.air.add_network("Cafe", rssi=-70)  # open
    device = await lab.device()
    link = await lab.setup_link()
    async with lab.browser(device) as tab:
        await tab.open(link)
        await tab.choose(HOME)
        for token, message in [
            ("", "Enter the device token"),
            ("abc", "The token has 32 characters; this one has 3."),
            ("!" * 32, "The token may contain only letters, digits, '-' and '_'."),
        ]:
            await tab.fill(blynk=token, **{"pass": HOME_PASSWORD})
            await tab.submit()
            assert message in await tab.message("blynk"), token
            assert "correct the fields" in await tab.status()
        await tab.screenshot(lab.shots / "bad-token.png")
        await tab.fill(blynk=token_of(link), **{"pass": "short"})
        await tab.submit()
        assert "8 to 63 characters" in await tab.message("pass")
        assert await tab.message("blynk") == ""
        assert tab.config_requests() == []  # nothing was sent yet

        await tab.choose("Cafe")  # an open network: no password asked
        assert not await tab.visible("#pass") and await tab.visible("#open-hint")
        await tab.choose(HOME)
        assert await tab.visible("#pass")

        # What only the device can judge: it refuses with a detail, shown next to the field.
        await tab.fill(host="h" * 300, **{"pass": HOME_PASSWORD})
        await tab.submit()
        await tab.page.wait_for_function(
            "() => document.getElementById('status').textContent.includes('refused')"
        )
        await tab.screenshot(lab.shots / "refused.png")
        status = await tab.status()
        assert "The device refused the settings: host: must be a host name" in status, status
        assert (await tab.message("host")).startswith("Must be a host name")
        assert len(tab.config_requests()) == 1
        assert not await tab.page.eval_on_selector("#fields", "f => f.disabled")  # form is back


SCRIPT = "<script>window.pwned=1</script>"
TAG = '"><img src=x onerror=pwned=2>'
QUOTES = 'it\'s "q" & <b>bold</b>'
LATIN1 = b"caf\xe9 \xff\xfe"  # not UTF-8: shown with replacement characters, sent as hex


async def test_ssids_render_as_text_and_provision_as_their_exact_bytes(lab: Lab) -> None:
    for n, ssid in enumerate([SCRIPT, TAG, QUOTES]):
        lab.air.add_network(ssid, "password 12345", rssi=-50 - n)
    lab.air.add_network(LATIN1, "password 12345", rssi=-70)
    device = await lab.device()
    async with lab.browser(device) as tab:
        evil = '"><script>window.pwned=3</script>'  # the URL's values are text too
        await tab.open("http://192.168.4.1/?token=" + quote(evil) + "&host=" + quote(evil))
        assert await tab.page.input_value("#blynk") == evil
        assert await tab.page.input_value("#host") == evil
        assert await tab.page.evaluate("() => typeof window.pwned") == "undefined"

        await tab.open(await lab.setup_link())
        networks = await tab.networks()
        names = [n["name"] for n in networks]
        assert names[:4] == [HOME, SCRIPT, TAG, QUOTES], names
        assert networks[1]["label"].startswith(SCRIPT + " (WPA2")
        assert names[4] == LATIN1.decode("utf-8", "replace")
        injected = await tab.page.evaluate(
            "() => [typeof window.pwned, document.querySelectorAll('img, b, select script').length]"
        )
        assert injected == ["undefined", 0]

        await tab.choose(SCRIPT)
        await tab.screenshot(lab.shots / "ssids.png")
        await tab.fill(**{"pass": "password 12345"})
        await tab.submit()
        result = await tab.result(timeout=90)
        assert result.outcome == "done", (result, device.log_text())
        assert SCRIPT in (await tab.page.text_content("#step-wifi") or "")  # as text
        assert SCRIPT in result.status
        assert await tab.page.evaluate("() => typeof window.pwned") == "undefined"
        assert tab.config_requests()[0]["ssid"] == [SCRIPT]
    assert device.stored().networks[0].ssid == SCRIPT.encode()

    other = await lab.device("lamp-2", "--mac", "02:00:00:00:00:02")
    async with lab.browser(other) as tab:
        await tab.open(await lab.setup_link())
        await provision(tab, LATIN1.decode("utf-8", "replace"), "password 12345")
        result = await tab.result(timeout=90)
        assert result.outcome == "done", (result, other.log_text())
        assert tab.config_requests()[0]["ssid_hex"] == [LATIN1.hex()]
    assert other.stored().networks[0].ssid == LATIN1


async def test_a_hidden_network_is_typed_in_and_joined_as_hidden(lab: Lab) -> None:
    lab.air.add_network("Secret Lab", "hidden pass 1", hidden=True)
    device = await lab.device()
    async with lab.browser(device) as tab:
        await tab.open(await lab.setup_link())
        assert "Secret Lab" not in [n["name"] for n in await tab.networks()]
        assert not await tab.visible("#ssidManual")
        await tab.choose_other("")
        assert await tab.visible("#ssidManual")
        await tab.fill(**{"pass": "hidden pass 1"})
        await tab.submit()
        assert "Enter the name of the network." in await tab.message("ssidManual")
        await tab.page.fill("#ssidManual", "Secret Lab")
        await tab.screenshot(lab.shots / "hidden.png")
        await tab.submit()
        result = await tab.result(timeout=90)
        assert result.outcome == "done", (result, device.log_text())
        sent = tab.config_requests()
        assert len(sent) == 1 and sent[0]["ssidManual"] == ["Secret Lab"] and "ssid" not in sent[0]
    network = device.stored().networks[0]
    assert network.ssid == b"Secret Lab" and network.hidden


async def test_an_enterprise_network_asks_for_identity_and_method(lab: Lab) -> None:
    lab.air.add_network("Campus", "campus password", security="WPA2-EAP", identity="alice")
    device = await lab.device()
    async with lab.browser(device) as tab:
        await tab.open(await lab.setup_link())
        assert not await tab.visible("#identity")
        await tab.choose("Campus")
        assert await tab.visible("#identity") and await tab.visible("#eap")
        assert await tab.visible("#pass")
        await tab.fill(**{"pass": "campus password"})
        await tab.submit()
        assert "Enter your user name" in await tab.message("identity")

        await tab.fill(identity="bob", eap="ttls")  # the network only knows alice
        await tab.submit()
        failed = await tab.result(timeout=90)
        assert failed.outcome == "failed" and explain(722).what in failed.status, failed

        await tab.fill(identity="alice")
        await tab.screenshot(lab.shots / "enterprise.png")
        await tab.submit()
        done = await tab.result(timeout=90)
        assert done.outcome == "done", (done, device.log_text())
        sent = tab.config_requests()
        assert [(q["identity"], q["eap"]) for q in sent] == [
            (["bob"], ["ttls"]),
            (["alice"], ["ttls"]),
        ]
    network = device.stored().networks[0]
    assert (network.ssid, network.identity, network.eap) == (b"Campus", "alice", "ttls")


async def test_a_device_that_drops_its_ap_is_explained_and_its_failure_read_back(lab: Lab) -> None:
    device = await lab.device("classic-1", "--classic")
    async with lab.browser(device) as tab:
        await tab.open(await lab.setup_link())
        await tab.page.wait_for_selector("#classic-hint", state="visible")  # warned up front
        await provision(tab, HOME, "not the password")
        failed = await tab.result(timeout=90)  # the AP came back: the page read the reason
        assert failed.outcome == "failed", (failed, device.log_text())
        assert explain(722).what in failed.status and failed.form_enabled
        said = [h["status"] for h in failed.history]
        assert any("closing its network" in text for text in said), said  # told when sent

        await tab.fill(**{"pass": HOME_PASSWORD})
        await tab.submit()
        await tab.page.wait_for_function(  # gone for good: the page says what to look for
            "() => document.getElementById('status').textContent.includes('closed its network')",
            timeout=30_000,
        )
        await tab.screenshot(lab.shots / "classic.png")
        assert "appears online in your account" in await tab.status()
    assert (await lab.online_devices())[0]["online"]


async def test_scan_again_lists_a_network_that_appeared_since(lab: Lab) -> None:
    device = await lab.device()
    async with lab.browser(device) as tab:
        link = await lab.setup_link()
        await tab.open(link)
        assert "Late Arrival" not in [n["name"] for n in await tab.networks()]
        lab.air.add_network("Late Arrival", "late password 1", rssi=-30)
        async with tab.page.expect_navigation(timeout=30_000):
            await tab.page.click("#rescan")
        names = [n["name"] for n in await tab.networks()]
        assert names[0] == "Late Arrival", names  # the strongest, first
        assert await tab.page.input_value("#blynk") == token_of(link)  # the link's values stay


async def test_without_a_configured_host_the_page_asks_for_one(lab: Lab) -> None:
    device = await lab.device()  # no --host: the agent has no cloud server of its own
    link = await lab.setup_link()
    async with lab.browser(device) as tab:
        await tab.open("http://192.168.4.1/")  # the page alone, without the setup link
        assert await tab.visible("#host")  # the cloud server section is open
        assert "no cloud server configured" in (await tab.page.text_content("#host-hint") or "")
        assert await tab.page.get_attribute("#host", "placeholder") == ""  # not blynk.cloud
        await tab.choose(HOME)
        await tab.fill(blynk=token_of(link), **{"pass": HOME_PASSWORD})
        await tab.submit()
        assert "Enter the cloud server's host name" in await tab.message("host")
        assert "correct the fields" in await tab.status()
        await tab.screenshot(lab.shots / "host-required.png")
        assert tab.config_requests() == []

        # A page that sent no host anyway (an old page, a script): the device refuses, in words.
        await tab.page.evaluate("() => { document.getElementById('host').required = false }")
        await tab.submit()
        await tab.page.wait_for_function(
            "() => document.getElementById('status').textContent.includes('refused')"
        )
        assert "no cloud server configured" in await tab.status()
        assert "This device has no cloud server configured" in await tab.message("host")

        await tab.open(link)  # the setup link carries the host: the field is filled in
        assert await tab.page.input_value("#host") == "127.0.0.1"
        await provision(tab, HOME, HOME_PASSWORD)
        result = await tab.result(timeout=90)
        assert result.outcome == "done", (result, device.log_text())
    assert device.stored().host == "127.0.0.1"


async def test_with_a_configured_host_the_page_offers_it(lab: Lab) -> None:
    device = await lab.device("lamp-h", "--host", "cloud.example.com")
    async with lab.browser(device) as tab:
        await tab.open("http://192.168.4.1/")
        assert not await tab.visible("#host")  # folded away, as before
        assert await tab.page.get_attribute("#host", "placeholder") == "cloud.example.com"
        assert not await tab.page.eval_on_selector("#host", "h => h.required")


async def test_a_rejected_token_says_what_to_do_from_the_phone(lab: Lab) -> None:
    device = await lab.device()
    async with lab.browser(device) as tab:
        await tab.open(await lab.setup_link())
        await tab.fill(blynk="A" * 32)  # a token the cloud does not know
        await provision(tab, HOME, HOME_PASSWORD)
        failed = await tab.result(timeout=90)
        await tab.screenshot(lab.shots / "token-rejected.png")
        assert failed.outcome == "failed", (failed, device.log_text())
        assert explain(703).what in failed.status and "(error 703)" in failed.status
        assert "provision again" not in failed.status  # no way to do that from a phone
        assert "Get a new setup link" in failed.status and "paste its token" in failed.status
        assert device.ap in failed.status  # "connected to <its network> again"
        assert await tab.page.evaluate("() => document.activeElement.id") == "blynk"

        await tab.open("http://192.168.4.1/")  # reopened later: the same advice up front
        await tab.page.wait_for_selector("#last", state="visible")
        last = await tab.page.text_content("#last") or ""
        assert "Get a new setup link" in last and "provision again" not in last


async def test_the_correct_the_fields_banner_goes_once_they_are_corrected(lab: Lab) -> None:
    device = await lab.device()
    link = await lab.setup_link()
    async with lab.browser(device) as tab:
        await tab.open(link)
        await tab.choose(HOME)
        await tab.fill(blynk="abc", **{"pass": "short"})
        await tab.submit()
        assert "correct the fields" in await tab.status()
        assert await tab.message("blynk") and await tab.message("pass")

        await tab.fill(blynk=token_of(link))  # one of two corrected: its mark goes, the banner not
        assert await tab.message("blynk") == "" and await tab.message("pass")
        assert "correct the fields" in await tab.status()

        await tab.fill(**{"pass": HOME_PASSWORD})  # the last one: the banner goes too
        assert await tab.message("pass") == ""
        assert await tab.status() == ""
        await tab.screenshot(lab.shots / "corrected.png")
        assert tab.config_requests() == []

        await tab.submit()
        result = await tab.result(timeout=90)
        assert result.outcome == "done", (result, device.log_text())
