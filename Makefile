# make run: the console on this machine, with embedded defaults.   make test: the whole suite.
# make test-fast: everything but the end-to-end, fault and browser tests, for the edit loop.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(CURDIR)/var
export DATA_DIR

.PHONY: run test test-fast lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

# A local console over plain HTTP: HTTPS=0 keeps cookies usable on http://127.0.0.1, and the secret key
# is generated once and kept in DATA_DIR so sessions survive restarts.
run: $(VENV)/.installed
	@mkdir -p "$(DATA_DIR)"
	@test -s "$(DATA_DIR)/secret_key" || $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(50))" > "$(DATA_DIR)/secret_key"
	@chmod 600 "$(DATA_DIR)/secret_key"
	SECRET_KEY_FILE="$(DATA_DIR)/secret_key" HTTPS=$${HTTPS:-0} $(BIN)/python manage.py runconsole

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	DEBUG=1 DATA_DIR=$$(mktemp -d) $(BIN)/python manage.py makemigrations --check --dry-run

# Tests get their own DATA_DIR; they use TEST_REDIS_URL when set, else start a private redis-server.
test: lint
	DEBUG=1 DATA_DIR=$$(mktemp -d) $(BIN)/python -m pytest $(PYTEST_ARGS)

# The suites left out start real workers, kill processes or drive Chromium: minutes, not seconds. The rest runs
# on every core (pytest-xdist); each worker has its own SQLite file and Redis. PYTEST_ARGS="-n 0" runs it serially.
FAST_PYTEST_ARGS := --ignore=tests/e2e --ignore=tests/faults --ignore=tests/browser -m "not e2e and not faults and not browser" -n auto --dist worksteal

test-fast: $(VENV)/.installed-test
	$(BIN)/ruff check .
	PROPERTY_EXAMPLES_SCALE=$${PROPERTY_EXAMPLES_SCALE:-0.2} DEBUG=1 DATA_DIR=$$(mktemp -d) $(BIN)/python -m pytest $(FAST_PYTEST_ARGS) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
