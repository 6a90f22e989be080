# The README's two commands: `make report` sets up and runs the default decision report;
# `make test` sets up and runs the tests. Both create .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
EXTRAS ?= test,finetune
# The CPU build of PyTorch for fine-tuning on the CPU. On a CUDA machine: make setup TORCH=torch
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)

.PHONY: setup browser test report clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel

# llama-cpp-python compiles from source (about 8 minutes on 2 cores) the first time; pip keeps the
# built wheel in its cache, so later installs on the same machine reuse it.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --progress-bar off '$(TORCH)'
	$(PY) -m pip install --progress-bar off -e '.[$(EXTRAS)]'
	rm -f $(VENV)/.installed-*; touch $(STAMP)

setup: $(STAMP)

# Debian's chromium opens the rendered report in the tests (installed when missing and run as root).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "The report test needs Chromium: sudo apt-get install chromium (Debian/Ubuntu)"; fi; }

test: setup browser
	$(PY) -m pytest -q

report: setup
	$(VENV)/bin/kit report

clean:
	rm -rf $(VENV) runs
