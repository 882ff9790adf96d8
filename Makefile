# `make test` and `make demo` work on a fresh machine: they create .venv and install into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Debian packages the test tiers need: dnsmasq (DHCP and DNS on the AP, netns tier), chromium
# (browser tier), dbus + the headers dbus-python builds against (python-dbusmock, NM tier),
# dhclient (a real DHCP client in the phone namespace), iproute2 (namespaces and veth),
# systemd (systemd-analyze checks the Raspberry Pi unit file).
DEBS   := dnsmasq-base chromium libdbus-1-dev libglib2.0-dev dbus isc-dhcp-client iproute2 systemd

.PHONY: install test lint unit integration demo bench clean

# The package and what it runs on: all `make demo` needs (no root, no Debian packages).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $(STAMP)

# The test tiers: Debian packages (root, apt) first, then the test extras (dbus-python builds
# against libdbus).
$(TEST_STAMP): $(STAMP)
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing \
		|| { echo "error: cannot install $$missing (the test tiers need them: run as root)"; \
		exit 1; }; \
	fi
	$(BIN)/pip install -q -e '.[test]'
	touch $(TEST_STAMP)

install: $(STAMP)

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/mypy --strict src/wifiprov/wire src/wifiprov/device/machine.py \
		src/wifiprov/device/store.py src/wifiprov/device/panel.py src/wifiprov/device/radio \
		src/wifiprov/sim src/wifiprov/linux src/wifiprov/provisioner/wifi/nm.py \
		src/wifiprov/device/service.py
	$(BIN)/mypy --ignore-missing-imports src/wifiprov

test: lint
	$(BIN)/pytest -q -p no:cacheprovider tests

unit: $(TEST_STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(TEST_STAMP)
	$(BIN)/pytest -q tests/integration

demo: $(STAMP)
	$(BIN)/wifiprov demo

clean:
	rm -rf $(VENV) build src/*.egg-info
