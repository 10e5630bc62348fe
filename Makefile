# together-operator developer commands. Everything runs from a virtualenv in .venv, made on demand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)

.PHONY: demo test lint testbins manifests sdk3-venv clean

## demo: local control plane + Together simulator + operator; a sample endpoint reaches Ready
demo: $(STAMP) testbins
	$(PY) hack/demo.py

## test: the whole test suite (unit, client, simulator, integration on a real kube-apiserver)
test: $(STAMP) testbins sdk3-venv
	$(PY) -m pytest

## lint: ruff and mypy (strict)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## testbins: build (or reuse from the cache) kube-apiserver, etcd, kube-controller-manager, kubectl, helm,
## hack/kstatus, and Prometheus and promtool
testbins:
	hack/build-testbins.sh

## manifests: render deploy/operator/ and the chart's README from the chart (tests check they are current)
manifests: $(STAMP)
	$(PY) hack/render_manifests.py --helm "$$(hack/build-testbins.sh)/helm"
	$(PY) hack/chart_readme.py

## sdk3-venv: build (or reuse from the cache) the virtualenv of the together 3.x SDK for the v2 fidelity test
sdk3-venv:
	hack/build-sdk3-venv.sh

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
