# The two commands of the README, and what they need.
# `make report` sets up and runs the default decision report; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
EXTRAS ?= test
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup test report run lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel

# llama-cpp-python compiles from source (about 8 minutes on 2 cores) the first time; pip keeps the
# built wheel in its cache, so later installs on the same machine reuse it.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --progress-bar off -e '.[$(EXTRAS)]'
	rm -f $(VENV)/.installed-*; touch $(STAMP)

setup: $(STAMP)

test: setup
	$(PY) -m pytest -q

run: setup
	$(VENV)/bin/kit run --task snips-intents --arm llama_cpp:smollm2-135m-instruct --limit 50

report: run

clean:
	rm -rf $(VENV) runs
