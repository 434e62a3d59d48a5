# Set-up, tests and the main job. `make test` and `make run` install first when .venv/ is missing.
# .venv/ holds the tested versions of constraints.txt; .venv-latest/ the newest releases pyproject.toml allows.
VENV := .venv
PY := $(VENV)/bin/python
ARCHBENCH := $(VENV)/bin/archbench
LATEST := .venv-latest

.PHONY: install test run clean test-latest constraints

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,ray]'
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q

run: $(VENV)/.installed
	$(ARCHBENCH) claims --threads 1 --out results/claims.md --out results/claims.json --out results/claims.csv

# The tests on the newest releases the ranges allow, in a venv of their own (made anew each time): a release
# that moves a figure fails here the day it is out. The packages whose versions differ are named.
test-latest:
	rm -rf $(LATEST)
	python3 -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[test,ray]'
	$(LATEST)/bin/python .ci/versions.py constraints.txt
	$(LATEST)/bin/python -m pytest -q -p no:cacheprovider || { \
		echo "test-latest: the tests fail on the newest releases; $$($(LATEST)/bin/python .ci/versions.py constraints.txt)" >&2; \
		exit 1; }

# Refresh constraints.txt on purpose from the newest releases, then run `make test` and commit it on its own.
constraints:
	rm -rf $(LATEST)
	python3 -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager '.[test,ray]'
	{ sed -n '/^#/p' constraints.txt; $(LATEST)/bin/python -m pip freeze --exclude-editable | grep -v '^archbench=='; } \
		> constraints.txt.new && mv constraints.txt.new constraints.txt
	rm -rf $(LATEST)

clean:
	rm -rf $(VENV) $(LATEST) .pytest_cache

# Refresh the committed CI baseline on purpose (after a change that is meant to move a count), then commit it.
.PHONY: baseline
baseline: $(VENV)/.installed
	$(ARCHBENCH) run suites/ci.yaml --out results/baseline-ci.json
