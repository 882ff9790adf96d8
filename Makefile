# `make test` and `make demo` work on a fresh machine: they create .venv and install into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages the test tiers need: dnsmasq (DHCP and DNS on the AP, netns tier), chromium
# (browser tier), dbus + the headers dbus-python builds against (python-dbusmock, NM tier),
# dhclient (a real DHCP client in the phone namespace), iproute2 (namespaces and veth),
# systemd (systemd-analyze checks the Raspberry Pi unit file).
DEBS   := dnsmasq-base chromium libdbus-1-dev libglib2.0-dev dbus isc-dhcp-client iproute2 systemd

.PHONY: install test lint unit integration demo bench clean

$(STAMP): pyproject.toml
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing \
		|| { echo "error: cannot install $$missing (run as root with apt)"; exit 1; }; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/mypy --strict src/wifiprov/wire src/wifiprov/device/machine.py \
		src/wifiprov/device/store.py src/wifiprov/device/panel.py src/wifiprov/device/radio \
		src/wifiprov/sim src/wifiprov/linux src/wifiprov/provisioner/wifi/nm.py \
		src/wifiprov/device/service.py
	$(BIN)/mypy --ignore-missing-imports src/wifiprov

test: lint
	$(BIN)/pytest -q -p no:cacheprovider tests

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

demo: $(STAMP)
	$(BIN)/wifiprov demo

clean:
	rm -rf $(VENV) build src/*.egg-info
