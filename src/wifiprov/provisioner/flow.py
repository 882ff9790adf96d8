"""The provisioning steps as a UI-agnostic sequence that emits events.

``Provisioner.run`` does what Blynk's app does: pick the template, find the device's access
point, read its board info, pick the network, get a provisioning token from the cloud, send the
configuration, follow the device live where it keeps its AP up, return to the normal network, wait
(long poll) for the cloud to see the device, and name it. Each step emits an ``Event``; answers
come from ``Choices`` (flags) or, when missing, from ``Prompts`` (the terminal). Every failure is
a ``ProvisioningFailed`` with what happened and what to do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx

from wifiprov.provisioner.client import CloudClient, CloudRequestFailed
from wifiprov.provisioner.wifi.base import JoinFailed, PhoneWifi
from wifiprov.wire.errors import explain
from wifiprov.wire.naming import ap_name, ble_name

RUNNING = "RUNNING"
AP_STATES = ("WAIT_CONFIG", "CONFIGURING")


@dataclass
class Event:
    step: str
    message: str
    elapsed: float
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Choices:
    """Answers given up front (flags); None means "ask" (or fail when nobody can be asked)."""

    template: str | None = None  # template id or name
    device: str | None = None  # the device's AP name
    ssid: str | None = None
    password: str | None = None
    hidden: bool = False
    name: str | None = None
    save: bool = False
    ap_passphrase: str | None = None  # the device's AP passphrase, when its AP is secured


class Prompts(Protocol):
    def choose(self, question: str, options: list[str]) -> str: ...
    def text(self, question: str, default: str = "", secret: bool = False) -> str: ...


class ProvisioningFailed(Exception):
    def __init__(self, what: str, todo: str, code: int | None = None) -> None:
        super().__init__(what)
        self.what, self.todo, self.code = what, todo, code

    @classmethod
    def from_code(cls, code: int) -> ProvisioningFailed:
        words = explain(code)
        return cls(words.what, words.todo, code)


def lost_device(doing: str, exc: httpx.HTTPError) -> ProvisioningFailed:
    """The device stopped answering: this side left its network, or the device went away."""
    reason = str(exc) or type(exc).__name__
    return ProvisioningFailed(
        f"lost the device's network while {doing} ({reason})",
        "stay close to the device, rejoin its network and try again; "
        "the device keeps its previous configuration",
    )


def named_for(ap: str, prefix: str, template_name: str) -> bool:
    """Whether ``ap`` is the AP name a device of ``template_name`` gives itself under ``prefix``
    (``<prefix> <template name>-<code>``, the name cut to fit: classic Edgent's 31 bytes or
    Edgent-Arduino's 29; wire/naming.py)."""
    head, dash, code = ap.rpartition("-")
    if not dash or not code or not head.startswith(prefix):
        return False
    try:
        return ap in (ap_name(prefix, template_name, code), ble_name(prefix, template_name, code))
    except ValueError:  # prefix and code alone do not fit
        return False


def refuse_twins(aps: list[str], ap: str) -> None:
    """Two devices in setup mode under one name (their 4-character codes collide: about one
    pair in 1,000 devices): which one a phone joins is the radio's choice, so the one that
    gets the configuration may not be the one meant. Said before anything is sent."""
    twins = aps.count(ap)
    if twins > 1:
        raise ProvisioningFailed(
            f"{twins} devices in setup mode are named '{ap}': which one this phone would "
            "configure cannot be told",
            "take all but one of them out of setup mode or out of range, provision it, "
            "then the next",
        )


def sort_aps(
    aps: list[str], prefix: str, template_name: str
) -> tuple[list[str], list[dict[str, str]]]:
    """The APs named for the template, and the other devices' APs with why each is left out."""
    matching: list[str] = []
    ignored: list[dict[str, str]] = []
    for ap in aps:
        if named_for(ap, prefix, template_name):
            matching.append(ap)
        elif ap.startswith(prefix + " "):
            ignored.append({"ap": ap, "why": f"another template (not '{template_name}')"})
        elif " " in ap and named_for(ap, ap.split(" ", 1)[0], template_name):
            other = ap.split(" ", 1)[0]
            ignored.append(
                {
                    "ap": ap,
                    "why": f"the hotspot prefix '{other}', not your organization's '{prefix}' "
                    "(the firmware's CONFIG_VENDOR_PREFIX must match it)",
                }
            )
    return matching, ignored


class Provisioner:
    def __init__(
        self,
        cloud: CloudClient,
        wifi: PhoneWifi,
        emit: Callable[[Event], None],
        prompts: Prompts | None = None,
        *,
        online_timeout: float = 90.0,
    ) -> None:
        self.cloud, self.wifi, self.prompts, self._emit = cloud, wifi, prompts, emit
        self.online_timeout = online_timeout
        self._started = time.monotonic()
        self.chosen: dict[str, str] = {}  # answers given so far (template, device): kept on retry
        self.ap_passphrase: str | None = None
        # How far the device got (for an interrupted run: ``left_in`` says it in words).
        self.stage = "start"  # start | configured | claimed | named
        self.ssid: str | None = None
        self.request: dict[str, Any] | None = None
        self.device_id: int | None = None
        self.device_name: str | None = None

    def emit(self, step: str, message: str, **data: Any) -> None:
        self._emit(Event(step, message, round(time.monotonic() - self._started, 3), data))

    def waiting(self, what: str, timeout: float) -> None:
        """A long step starts: what it waits for, and for how long at most (a UI shows a
        spinner with the time passed until the next event other than "progress")."""
        self.emit(
            "waiting", f"waiting for {what} (up to {timeout:.0f} s)", what=what, timeout=timeout
        )

    def _join_timeout(self) -> float:
        return float(getattr(self.wifi, "join_timeout", 30.0))

    def left_in(self) -> str:
        """In words: what state the device is in if the run stops now (Ctrl-C)."""
        if self.stage == "start":
            return (
                "nothing was sent to the device: it is unchanged, still in setup mode "
                "(run `wifiprov provision` again)"
            )
        if self.stage == "configured":
            assert self.request is not None
            until = time.strftime("%H:%M", time.localtime(self.request.get("expires_at", 0)))
            return (
                f"the device has the network '{self.ssid}' and a provisioning token "
                f"(…{self.request['token'][-4:]}, valid until {until}) and goes on connecting: "
                "once it logs in it is in your account (`wifiprov devices`); if it cannot "
                "connect it returns to setup mode with its previous configuration"
            )
        if self.stage == "claimed":
            return (
                f"the device is in your account as device {self.device_id}, not named yet: "
                f"`wifiprov device show {self.device_id}`, `wifiprov rename {self.device_id} NAME`"
            )
        return f"the device is provisioned: '{self.device_name}' (device {self.device_id})"

    def ask_choice(self, question: str, options: list[str], flag: str) -> str:
        if self.prompts is None:
            raise ProvisioningFailed(f"{question}: no answer given", f"pass {flag}")
        return self.prompts.choose(question, options)

    def ask_text(self, question: str, flag: str, secret: bool = False, default: str = "") -> str:
        if self.prompts is None:
            raise ProvisioningFailed(f"{question}: no answer given", f"pass {flag}")
        return self.prompts.text(question, default, secret)

    # --- the steps ---
    async def run(self, choices: Choices) -> dict[str, Any]:
        self._started = time.monotonic()
        self.ap_passphrase = choices.ap_passphrase
        self.stage, self.device_id, self.request = "start", None, None
        template, prefix = await self.pick_template(choices)
        ap = await self.find_device(choices, prefix, template["name"])
        portal = await self.join(ap)
        # verify=False: the portal is plain HTTP, and loading CA roots costs ~30 ms per client.
        async with httpx.AsyncClient(base_url=portal, timeout=15, verify=False) as device:
            info = await self.board_info(device, template)
            ssid, password = await self.pick_network(device, choices)
            request = await self.cloud_token(template)
            await self.send_config(device, request, ssid, password, choices.save)
            if info.get("ap_sta"):
                await self.follow(device)
        await self.wifi.leave()
        self.emit("leave", "back on the normal network")
        device_id = await self.wait_online(request, ap)
        return await self.name(device_id, choices)

    async def pick_template(self, choices: Choices) -> tuple[dict[str, Any], str]:
        found: list[tuple[dict[str, Any], str]] = []
        for org in await self.cloud.organizations():
            for t in await self.cloud.templates(org["id"]):
                found.append((t, org["hotspot_prefix"]))
        if not found:
            raise ProvisioningFailed(
                "your organizations have no templates",
                "create one first (POST /api/orgs/{org}/templates)",
            )
        if choices.template:
            match = [f for f in found if choices.template in (f[0]["id"], f[0]["name"])]
            if not match:
                names = ", ".join(f"{t['name']} ({t['id']})" for t, _ in found)
                raise ProvisioningFailed(
                    f"no template '{choices.template}'", f"choose one of: {names}"
                )
            template, prefix = match[0]
        elif len(found) == 1:
            template, prefix = found[0]
        else:
            labels = [f"{t['name']} ({t['id']})" for t, _ in found]
            picked = self.ask_choice("Which template?", labels, "--template")
            template, prefix = found[labels.index(picked)]
        self.chosen["template"] = template["id"]
        self.emit(
            "template",
            f"template {template['name']} ({template['id']})",
            template_id=template["id"],
        )
        return template, prefix

    async def find_device(self, choices: Choices, prefix: str, template_name: str) -> str:
        scan_timeout = float(getattr(self.wifi, "scan_timeout", 10.0))
        self.waiting("a WiFi scan for devices in setup mode", scan_timeout)
        aps = await self.wifi.access_points()
        pattern = f"{prefix} {template_name}-XXXX"
        if choices.device:
            if choices.device not in aps:
                raise ProvisioningFailed(
                    f"no access point named '{choices.device}' is in range",
                    "check the device is in setup mode (a new device starts in it; otherwise "
                    "hold its button 10 s) and close to you",
                )
            ap = choices.device
            refuse_twins(aps, ap)
            self.chosen["device"] = ap
            note = "" if named_for(ap, prefix, template_name) else f" (not named '{pattern}')"
            self.emit("find", f"using device '{ap}'{note}", device=ap, ignored=[])
            return ap
        candidates, ignored = sort_aps(list(dict.fromkeys(aps)), prefix, template_name)
        others = ""
        if ignored:
            listed = "; ".join(f"'{i['ap']}': {i['why']}" for i in ignored[:5])
            more = f" and {len(ignored) - 5} more" if len(ignored) > 5 else ""
            others = f"ignored {len(ignored)} other device(s) in setup mode: {listed}{more}"
        if not candidates:
            raise ProvisioningFailed(
                f"no '{template_name}' device in setup mode found (looking for access points "
                f"named '{pattern}'; {len(aps)} in range)" + (f"; {others}" if others else ""),
                "put the device in setup mode (a new device starts in it; otherwise hold its "
                "button 10 s) and bring it close; for a device of another template pass its "
                "--template, or name its access point with --device",
            )
        ap = (
            candidates[0]
            if len(candidates) == 1
            else self.ask_choice("Which device?", candidates, "--device")
        )
        refuse_twins(aps, ap)
        self.chosen["device"] = ap
        message = f"found device '{ap}'" + (f"; {others}" if others else "")
        self.emit("find", message, device=ap, ignored=ignored)
        return ap

    async def join(self, ap: str) -> str:
        self.waiting(f"this machine to join '{ap}'", self._join_timeout())
        try:
            portal = await self.wifi.join(ap, self.ap_passphrase)
        except JoinFailed as exc:
            raise ProvisioningFailed(
                f"could not join the device's network: {exc}",
                "move closer to the device and try again",
            ) from None
        self.emit("join", f"joined '{ap}'", portal=portal)
        return portal

    async def _get(self, device: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
        try:
            return await device.get(path, params=params or None)
        except httpx.HTTPError as exc:
            raise lost_device(f"reading {path}", exc) from None

    async def board_info(self, device: httpx.AsyncClient, template: dict[str, Any]) -> Any:
        info = (await self._get(device, "/board_info.json")).json()
        if info.get("tmpl_id") != template["id"]:
            raise ProvisioningFailed(
                f"this device is a '{info.get('board')}' (template {info.get('tmpl_id')}), "
                f"not a '{template['name']}' ({template['id']})",
                "choose the device's own template (--template), or another device",
            )
        self.emit(
            "board_info",
            f"device firmware {info.get('fw_ver')}, board '{info.get('board')}'",
            info=info,
        )
        if info.get("last_error"):
            words = explain(int(info["last_error"]))
            self.emit(
                "last_error", f"an earlier attempt failed: {words.what}", code=info["last_error"]
            )
        return info

    async def pick_network(self, device: httpx.AsyncClient, choices: Choices) -> tuple[str, str]:
        networks = (await self._get(device, "/wifi_scan.json")).json()
        networks = [n for n in networks if n.get("ssid")]
        self.emit("scan", f"the device sees {len(networks)} network(s)", networks=networks)
        ssid = choices.ssid
        if ssid is None:
            labels = [f"{n['ssid']}  ({n['sec']}, {n['rssi']} dBm)" for n in networks]
            hidden = "Another (hidden) network…"
            picked = self.ask_choice("Which network?", [*labels, hidden], "--ssid")
            if picked == hidden:
                ssid = self.ask_text("Network name", "--ssid")
            else:
                ssid = networks[labels.index(picked)]["ssid"]
        elif not choices.hidden and ssid not in {n["ssid"] for n in networks}:
            raise ProvisioningFailed(
                f"the device does not see a network named '{ssid}'",
                "check the name (it is case-sensitive) and that the network is in range; for a "
                "hidden network pass --hidden",
            )
        password = choices.password
        if password is None:
            password = self.ask_text(f"Password for '{ssid}'", "--password-file", secret=True)
        return ssid, password

    async def cloud_token(self, template: dict[str, Any]) -> dict[str, Any]:
        try:
            request = await self.cloud.provisioning_token(template["id"])
        except CloudRequestFailed as exc:
            if exc.status != 403:
                raise  # unreachable, session ended ...: said as such by the front end
            raise ProvisioningFailed(
                f"the cloud refused a provisioning token: {exc}",
                "ask an owner or admin for the provisioning right",
            ) from None
        self.emit(
            "token",
            f"provisioning token …{request['token'][-4:]} (valid 15 min)",
            request_id=request["id"],
        )
        return request

    async def send_config(
        self,
        device: httpx.AsyncClient,
        request: dict[str, Any],
        ssid: str,
        password: str,
        save: bool,
    ) -> None:
        params = {
            "ssid": ssid,
            "pass": password,
            "blynk": request["token"],
            "host": request["host"],
            "port": request["port"] or "",
            "port_ssl": request["port_ssl"] or "",
        }
        if save:
            params["save"] = "1"
        try:
            reply = await device.get("/config?" + urlencode(params))
        except httpx.HTTPError as exc:
            # It may have taken it: say what may have happened if the run stops here.
            self.stage, self.ssid, self.request = "configured", ssid, request
            raise lost_device("sending the configuration", exc) from None
        if reply.status_code != 200:
            try:
                detail = reply.json().get("detail") or reply.json().get("msg")
            except ValueError:
                detail = reply.text
            raise ProvisioningFailed(
                f"the device refused the configuration: {detail}", "correct it and try again", 700
            )
        self.stage, self.ssid, self.request = "configured", ssid, request
        self.emit("config", f"configuration sent; the device joins '{ssid}'")

    async def follow(self, device: httpx.AsyncClient) -> None:
        """Watch the device connect (it keeps its AP up): long-poll ``/status.json``."""
        state = "CONNECTING_NET"
        deadline = time.monotonic() + self.online_timeout
        self.waiting(f"the device to join '{self.ssid}' and log in", self.online_timeout)
        while time.monotonic() < deadline:
            try:
                reply = await device.get("/status.json", params={"state": state, "wait": 10})
            except httpx.HTTPError:
                return  # the AP went away: the outcome comes from the cloud (or last_error)
            if reply.status_code != 200:
                return  # an Edgent device without our extension
            status = reply.json()
            if status["state"] != state:
                state = status["state"]
                self.emit("progress", PROGRESS.get(state, state), state=state)
            if state == RUNNING:
                return
            if state in AP_STATES and status.get("last_error"):
                raise ProvisioningFailed.from_code(int(status["last_error"]))

    async def wait_online(self, request: dict[str, Any], ap: str) -> int:
        """Wait for the claim, then for the device to be online (both within ``online_timeout``,
        with progress); say exactly what is known when it does not happen."""
        self.emit("wait", "waiting for the device to take its token")
        deadline = time.monotonic() + self.online_timeout
        self.waiting("the cloud to see the device log in", self.online_timeout)
        device_id: int | None = None
        while (left := deadline - time.monotonic()) > 0:
            status = await self.cloud.wait_for_claim(request["id"], min(left, 30))
            if status["status"] == "claimed":
                device_id = int(status["device_id"])
                break
            if status["status"] == "refused":
                raise ProvisioningFailed(
                    f"the cloud refused the device: {status.get('refused_reason')}",
                    "provision it with its own template (--template), or flash the firmware "
                    "of this template",
                    703,
                )
            if status["status"] == "expired":
                break
        if device_id is None:
            raise await self.diagnose(ap)
        self.stage, self.device_id = "claimed", device_id
        self.emit("claimed", f"the device took its token (device {device_id})", device_id=device_id)
        if (left := deadline - time.monotonic()) > 0:
            self.waiting(f"device {device_id} to be online", left)
        next_note = time.monotonic() + 5
        while True:
            device = await self.cloud.device(device_id)
            if device["online"]:
                self.emit("online", "the device is online", device_id=device_id)
                return device_id
            now = time.monotonic()
            if now >= deadline:
                raise ProvisioningFailed(
                    f"the device took its token (device {device_id}) but is not online "
                    f"after {self.online_timeout:.0f} s",
                    "it may still be connecting: check `wifiprov devices`; if it stays offline, "
                    "check its network and power",
                )
            if now >= next_note:
                self.emit(
                    "progress",
                    f"device {device_id} took its token; waiting for it to be online "
                    f"({deadline - now:.0f} s left)",
                    device_id=device_id,
                )
                next_note = now + 5
            await asyncio.sleep(min(0.5, max(0.0, deadline - now)))

    async def diagnose(self, ap: str) -> ProvisioningFailed:
        """The device did not come online: rejoin its AP and read why (``last_error``)."""
        self.emit("diagnose", "the device did not come online; asking it why")
        self.waiting(f"this machine to rejoin '{ap}'", self._join_timeout())
        state = None
        try:
            portal = await self.wifi.join(ap, self.ap_passphrase)
            async with httpx.AsyncClient(base_url=portal, timeout=10) as device:
                info = (await device.get("/board_info.json")).json()
                status = await device.get("/status.json")  # wifiprov's; Blynk's firmware: 404
                if status.status_code == 200:
                    state = status.json().get("state")
        except (JoinFailed, httpx.HTTPError, ValueError, AttributeError):
            return ProvisioningFailed(
                "the device did not come online and is not back in setup mode",
                "it may still be trying: wait a minute, check `wifiprov devices`; otherwise "
                "hold its button 10 s and provision again",
            )
        finally:
            await self.wifi.leave()
        code = int(info.get("last_error") or 0)
        if code:
            return ProvisioningFailed.from_code(code)
        if state is not None and state not in AP_STATES:  # its AP is up while it works (AP+STA)
            return ProvisioningFailed(
                f"the device is still connecting after {self.online_timeout:.0f} s "
                f"(its state: {state})",
                "it may yet come online: check `wifiprov devices` in a minute; if it does not, "
                "check the network's internet access and the cloud",
            )
        return ProvisioningFailed(
            "the device is back in setup mode without an error code", "try again"
        )

    async def name(self, device_id: int, choices: Choices) -> dict[str, Any]:
        current = await self.cloud.device(device_id)
        name = choices.name
        if name is None:
            name = self.ask_text("Name the device", "--name", default=current["name"])
        device = await self.cloud.rename(device_id, name) if name != current["name"] else current
        self.stage, self.device_name = "named", device["name"]
        state = "is online" if device["online"] else "is named but went offline again"
        self.emit("done", f"device '{device['name']}' {state}", device=device)
        return device


PROGRESS = {
    "WAIT_CONFIG": "the device gave up and is back in setup mode",
    "CONFIGURING": "the device gave up and is back in setup mode",
    "CONNECTING_NET": "the device is joining the network",
    "CONNECTING_CLOUD": "the device joined the network; connecting to the cloud",
    "RUNNING": "the device is connected to the cloud",
    "RETRY_WAIT": "the device is retrying",
}
