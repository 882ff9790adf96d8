# `make test` and `make demo` work on a fresh machine: they create .venv and install into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Debian packages the test tiers need: dnsmasq (DHCP and DNS on the AP, netns tier), chromium
# (browser tier), dbus + the headers dbus-python builds against (python-dbusmock, NM tier),
# dhclient (a real DHCP client in the phone namespace), iproute2 (namespaces and veth),
# systemd (systemd-analyze checks the Raspberry Pi unit file), mosquitto-clients (a third-party
# MQTT client against the cloud's MQTT API).
DEBS   := dnsmasq-base chromium libdbus-1-dev libglib2.0-dev dbus isc-dhcp-client iproute2 systemd \
	  mosquitto-clients

.PHONY: install test lint unit integration demo bench clean dist screenshots

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

# `make screenshots`: the console at phone size (390x844), one small PNG per step, into
# docs/console/ (shown in docs/console.md and the README; commit them). The same test module runs
# in `make test`, writing into a temporary folder. Neither `test` nor `demo` needs this target.
SHOTS_DIR ?= docs/console
screenshots: $(TEST_STAMP)
	rm -f $(SHOTS_DIR)/*.png
	WIFIPROV_CONSOLE_SHOTS=$(abspath $(SHOTS_DIR)) $(BIN)/pytest -q -p no:cacheprovider \
		tests/browser/test_console_screenshots.py
	@ls -l $(SHOTS_DIR)/*.png

clean:
	rm -rf $(VENV) build src/*.egg-info

# `make dist`: dist/wifiprov-VERSION-py3-none-any.whl and dist/wifiprov-VERSION.tar.gz of the
# last commit (HEAD: uncommitted changes are left out, and it says so), built from a clone of
# it. VERSION is setuptools-scm's reading of `git describe`: X.Y.Z on a tag vX.Y.Z, otherwise
# the next version's .devN+gHASH (N commits since the last tag), so two commits never share a
# version. The build tools live in their own virtualenv, made once (DIST_TOOLS).
DIST_DIR   ?= dist
DIST_TOOLS ?= build/dist-tools
DIST_SRC   := build/dist-src

$(DIST_TOOLS)/.installed: pyproject.toml
	$(PYTHON) -m venv $(DIST_TOOLS)
	$(DIST_TOOLS)/bin/pip install -q --upgrade pip build 'setuptools>=68' 'setuptools-scm>=8'
	touch $@

dist: $(DIST_TOOLS)/.installed
	@if [ -n "$$(git status --porcelain --untracked-files=no)" ]; then \
		echo "note: building HEAD ($$(git rev-parse --short HEAD)); uncommitted changes are not in it"; fi
	rm -rf $(DIST_SRC) $(DIST_SRC).out
	git clone -q --no-checkout . $(DIST_SRC)
	git -C $(DIST_SRC) checkout -q --detach $$(git rev-parse HEAD)
	$(DIST_TOOLS)/bin/python -m build --no-isolation --outdir $(DIST_SRC).out $(DIST_SRC) \
		>$(DIST_SRC).log 2>&1 || { cat $(DIST_SRC).log; exit 1; }
	@mkdir -p $(DIST_DIR) && for f in $(DIST_SRC).out/*; do \
		mv -f "$$f" $(DIST_DIR)/ && echo "built $(DIST_DIR)/$${f##*/}"; done
	rm -rf $(DIST_SRC) $(DIST_SRC).out
