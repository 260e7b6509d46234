# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint system-deps benchmark bench crash clean

$(BIN)/mailroom: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/mailroom
	$(BIN)/mailroom --config config/demo.yaml demo

system-deps:
	@{ test -x /usr/sbin/dovecot && test -x /usr/bin/chromium && \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || { $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	  dovecot-imapd chromium postgresql; }

lint: $(BIN)/mailroom
	$(BIN)/ruff check mailroom tests benchmarks
	$(BIN)/mypy mailroom

# the suite on SQLite, then what has a database again on a private PostgreSQL cluster
test: system-deps lint
	$(BIN)/pytest -q
	$(BIN)/pytest -q --database postgresql

benchmark: $(BIN)/mailroom
	$(BIN)/python benchmarks/routing.py

# Drain 2,000 requests from a private Dovecot, through a Maildir outbox and through SMTP, beside
# the ceilings of the same run; acknowledgment latency; peak memory; the SMTP drain on
# PostgreSQL; one and two served instances on PostgreSQL, and through a slow SMTP server
# (about 16 min)
bench: system-deps $(BIN)/mailroom
	$(BIN)/python benchmarks/drain.py

# SIGKILL the daemon at random points while it drains 500 messages, 20 times (about 10 min)
crash: $(BIN)/mailroom
	$(BIN)/python benchmarks/crash.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
