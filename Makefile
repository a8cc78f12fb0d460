# The two commands a fresh machine needs: `make demo` and `make test`. Both set themselves up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export BIZON_FORGE_CACHE ?= $(CURDIR)/.cache

.PHONY: setup test-fast postgres mariadb test demo bench lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,demo,bizon-runtime]'
	touch $@

setup: $(STAMP)

# The sql recipe's tests start a throwaway PostgreSQL server; install Debian's if this machine has none.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	  { echo "installing PostgreSQL (Debian package)"; \
	    $$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive sh -c \
	    'apt-get update -qq && apt-get install -y -qq postgresql >/dev/null'; }

# ... and a throwaway MariaDB server (never the system service); install Debian's if this machine has none.
mariadb:
	@command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || \
	  { echo "installing MariaDB (Debian package)"; \
	    $$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive sh -c \
	    'apt-get update -qq && apt-get install -y -qq mariadb-server >/dev/null'; }

# pytest-xdist, `--dist loadfile` keeping a module on one worker, as its module-scoped fixtures and ordered tests
# need; each worker starts its own throwaway servers on free ports. TEST_WORKERS (3 on this 2-core machine):
# much of the suite waits on subprocesses, servers, backoffs and Retry-After, so one worker more than the cores
# keeps both busy (measured: 28 CPU-minutes in 16.8 minutes with 3 workers).
TEST_WORKERS ?= 3
test: setup postgres mariadb
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The loop while working (under a minute): everything but the tests marked slow (bizon pipelines, full
# validations, servers, fault sweeps; see tests/conftest.py).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" -n auto --dist loadfile

# `make demo DEMO_DIR=/tmp/d2` runs a second one beside the first: they share no folder and no port.
demo: setup
	$(BIN)/python demo/run.py $(DEMO_DIR)

bench: setup
	$(BIN)/python bench/run.py

# mypy through .ci/typecheck.py, and the layers ([tool.importlinter]) through .ci/layers.py: both read server/ and
# validators/ as the bizon_forge.* modules they ship as.
lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/python .ci/typecheck.py && $(BIN)/python .ci/layers.py

clean:
	rm -rf $(VENV) .cache .demo .bench
