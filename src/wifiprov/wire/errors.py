"""Provisioning error codes (a device's ``last_error``), each with words a user understands."""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class ProvisioningError(IntEnum):
    NONE = 0
    CONFIG_INVALID = 700
    NETWORK_TIMEOUT = 701
    CLOUD_TIMEOUT = 702
    TOKEN_REJECTED = 703
    NETWORK_OTHER = 704
    CLOUD_OTHER = 705
    DNS_FAILED = 710
    TLS_REJECTED = 711
    CAPTIVE_PORTAL = 712
    NETWORK_NOT_FOUND = 720
    NO_CABLE = 721
    AUTH_FAILED = 722
    NO_ADDRESS = 723
    SIM_MISSING = 730
    SIM_LOCKED = 731
    SIM_WRONG_PIN = 732


class Explanation(NamedTuple):
    what: str  # what happened
    todo: str  # what the user can do about it


EXPLANATIONS: dict[int, Explanation] = {
    0: Explanation("No error.", "Nothing to do."),
    700: Explanation(
        "The device rejected the configuration it was sent.",
        "Check the network name, password and token, then try again.",
    ),
    701: Explanation(
        "The device could not connect to the WiFi network in time.",
        "Move the device closer to the router, check the network is 2.4 GHz if the device needs "
        "it, and try again.",
    ),
    702: Explanation(
        "The device joined the network but could not reach the cloud in time.",
        "Check that the network has internet access and that the cloud's host and port are "
        "reachable from it (firewall, proxy).",
    ),
    703: Explanation(
        "The cloud rejected the device's token.",
        "The token expired, was already used, or its device was deleted: provision again to get a "
        "new one.",
    ),
    704: Explanation(
        "The device hit a network or internal failure.",
        "Restart the device and try again; if it repeats, check the device's log.",
    ),
    705: Explanation(
        "The cloud refused the connection for another reason.",
        "Check the cloud's status and logs, then try again.",
    ),
    710: Explanation(
        "The device could not resolve the cloud's host name.",
        "Check the network's DNS, or use the cloud's IP address as its host.",
    ),
    711: Explanation(
        "The device rejected the cloud's TLS certificate.",
        "Use a certificate chained to a root the device trusts, or configure the device's CA.",
    ),
    712: Explanation(
        "The network has a captive portal (a sign-in page) that blocks the device.",
        "Use a network without a sign-in page, or register the device's MAC address with it.",
    ),
    720: Explanation(
        "The device could not find the WiFi network.",
        "Check the network name (it is case-sensitive), that the router is on and in range, and "
        "that it uses a band the device supports.",
    ),
    721: Explanation("No network cable is connected.", "Plug in the cable and try again."),
    722: Explanation(
        "The WiFi password was rejected.",
        "Check the password (it is case-sensitive) and try again.",
    ),
    723: Explanation(
        "The device joined the network but got no IP address (DHCP failed).",
        "Check the router's DHCP server, or give the device a static address.",
    ),
    730: Explanation("No SIM card was found.", "Insert a SIM card and try again."),
    731: Explanation("The SIM card is locked.", "Unlock the SIM card (PUK) and try again."),
    732: Explanation("The SIM PIN is wrong.", "Correct the SIM PIN and try again."),
}


def explain(code: int) -> Explanation:
    """Words for a ``last_error`` code; unknown codes get a generic explanation with the number."""
    found = EXPLANATIONS.get(code)
    if found is not None:
        return found
    return Explanation(
        f"The device reported an unknown error ({code}).",
        "Check the device's log and try again.",
    )
