"""`wifiprov device`'s settings: no default cloud host, and the LED it drives."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero import LED, PWMLED, Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from wifiprov.device.cli import KEYS, agent_config, load_settings, make_led, parser

NEEDED = {"template_id": "TMPL0001", "template_name": "Lamp"}


def flags(*argv: str) -> dict[str, object]:
    """The flags as ``main`` hands them to ``load_settings``."""
    args = parser().parse_args(["--template-id", "TMPL0001", "--template-name", "Lamp", *argv])
    return {k: v for k, v in vars(args).items() if k in KEYS}


def test_without_host_the_agent_has_none() -> None:
    values = load_settings(None, flags())
    assert values.get("host") is None
    assert agent_config(values).host == ""  # not blynk.cloud: /config must name the cloud


def test_a_configured_host_is_the_default(tmp_path: Path) -> None:
    assert agent_config(load_settings(None, {**NEEDED, "host": "cloud.local"})).host == (
        "cloud.local"
    )
    config = tmp_path / "device.toml"
    config.write_text('[device]\ntemplate_id = "TMPL0001"\ntemplate_name = "L"\nhost = "c.lan"\n')
    assert agent_config(load_settings(config, {})).host == "c.lan"


def test_the_led_dims_unless_told_not_to(tmp_path: Path) -> None:
    assert load_settings(None, flags())["led_pwm"] is True
    assert load_settings(None, flags("--no-led-pwm"))["led_pwm"] is False
    config = tmp_path / "device.toml"
    config.write_text('template_id = "TMPL0001"\ntemplate_name = "L"\nled_pwm = false\n')
    assert load_settings(config, {})["led_pwm"] is False


@pytest.fixture
def factory() -> Iterator[None]:
    yield
    if Device.pin_factory is not None:
        Device.pin_factory.close()
    Device.pin_factory = None


def test_a_pin_that_can_dim_gets_a_pwm_led(factory: None) -> None:
    Device.pin_factory = MockFactory(pin_class=MockPWMPin)
    assert isinstance(make_led(17, pwm=True), PWMLED)
    led = make_led(18, pwm=False)
    assert isinstance(led, LED) and not isinstance(led, PWMLED)


def test_a_pin_without_pwm_gets_an_on_off_led(
    factory: None, caplog: pytest.LogCaptureFixture
) -> None:
    Device.pin_factory = MockFactory()  # its pins have no PWM
    with caplog.at_level(logging.INFO, logger="wifiprov.device"):
        led = make_led(17, pwm=True)
    assert isinstance(led, LED) and "blinks instead of breathing" in caplog.text
