# Set-up, tests and the main job. `make test` and `make run` install first when .venv/ is missing.
VENV := .venv
PY := $(VENV)/bin/python
ARCHBENCH := $(VENV)/bin/archbench

.PHONY: install test run clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,ray]'
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q

run: $(VENV)/.installed
	$(ARCHBENCH) claims --threads 1 --out results/claims.md --out results/claims.json --out results/claims.csv

clean:
	rm -rf $(VENV) .pytest_cache

# Refresh the committed CI baseline on purpose (after a change that is meant to move a count), then commit it.
.PHONY: baseline
baseline: $(VENV)/.installed
	$(ARCHBENCH) run suites/ci.yaml --out results/baseline-ci.json
