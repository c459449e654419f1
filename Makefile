# mailstack: the two commands are `make lab` and `make test`; the rest are their parts.
VENV    := .venv
PYTHON  := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# Debian packages the machine running the lab and the suite needs.
HOST_PACKAGES := systemd-container mmdebstrap apt-cacher-ng nftables iproute2 openssh-client \
                 debian-archive-keyring ca-certificates e2fsprogs \
                 postgresql dovecot-core dovecot-sieve postfix postfix-pgsql rspamd \
                 chromium chromium-driver
# What only the benchmarks compare against; each benchmark starts its own instance on a free
# loopback port and stops it by PID, whatever the package's own service does.
BENCH_PACKAGES := postgrey

.PHONY: all venv host-packages lint test lab lab-down bench docs lock

all: venv

$(VENV)/.installed: requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

venv: $(VENV)/.installed

/var/cache/mailstack/.host-packages: Makefile
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(HOST_PACKAGES)
	mkdir -p $(dir $@) && touch $@

host-packages: /var/cache/mailstack/.host-packages

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The whole suite, lab end-to-end tests included (they bring the lab up once per run).
test: venv host-packages lint
	$(PYTHON) -m pytest --durations=25

# The whole platform on local lab hosts, left running.
lab: venv host-packages
	$(VENV)/bin/mailstack lab up --deploy

lab-down: venv
	$(VENV)/bin/mailstack lab down

/var/cache/mailstack/.bench-packages: Makefile
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BENCH_PACKAGES)
	mkdir -p $(dir $@) && touch $@

bench: venv host-packages /var/cache/mailstack/.bench-packages
	$(PYTHON) -m pytest -m benchmark -p no:cacheprovider -s benchmarks

docs: venv
	$(VENV)/bin/mailstack settings docs > docs/settings.md

# Re-pin every Python dependency (needs uv): the suite's and the operator's (3.11 here), and the
# hosts' venvs (Debian 13's Python). The locks record hashes, never download URLs.
lock:
	uv pip compile --quiet pyproject.toml --extra test --generate-hashes --python-version 3.11 \
	    --no-header -o requirements.lock
	uv pip compile --quiet pyproject.toml --extra panel --generate-hashes --python-version 3.13 \
	    --python-platform x86_64-manylinux_2_28 --no-header -o requirements-host.lock
