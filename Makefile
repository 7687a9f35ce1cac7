# Quick start: `make demo` runs the morning job on the bundled sample; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DIGEST := $(BIN)/digest --config digest.toml
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean install chromium

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

digest.toml:
	cp config.example.toml digest.toml

demo: $(STAMP) digest.toml
	$(DIGEST) init
	$(DIGEST) lists create morning --name "Morning Briefing" --exist-ok
	$(DIGEST) subscribers import samples/subscribers.csv --list morning
	$(DIGEST) run --list morning
	@echo
	@echo "Done. One .eml per subscriber (and an .html copy) is in outbox/; open outbox/index.html to see them."
	@echo "Try: $(DIGEST) status   ·   $(DIGEST) preview --list morning --tier free -o preview.html"

# The web pages are tested in a real browser: Debian's chromium, installed here if missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "Installing Debian's chromium for the browser tests (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
	  echo "Could not install chromium: the browser tests will be skipped (outside CI)"

test: $(STAMP) chromium
	$(BIN)/python -m pytest

# `make bench` runs every benchmark at full size (tens of minutes); `make bench BENCH="e2e
# --quick"` runs one, small. See README "Performance".
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH)

clean:
	rm -rf $(VENV) outbox digest.db digest.db-wal digest.db-shm .pytest_cache
