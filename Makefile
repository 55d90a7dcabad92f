# heplearn: `make demo` runs the main job, `make test` runs the tests.
# Both create .venv on first use: torch first (pinned, CPU build), then heplearn with every extra and the test tools.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test docs lint bench-quick clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[all,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/heplearn demo --output demo

# The HTML-report test renders reports in headless Chromium (Debian's package).
/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null

# `make test` (CI) runs the heavy tests too; plain `pytest` leaves them out for a fast development loop.
test: $(STAMP) /usr/bin/chromium
	$(BIN)/python -m pytest -q -m "not slow"

# The documentation site (MkDocs + mkdocstrings) into site/; open site/index.html.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks docs/hooks.py

clean:
	rm -rf $(VENV) demo site
