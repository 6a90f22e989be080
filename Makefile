# The README's two commands: `make report` sets up and runs the default decision report;
# `make test` sets up and runs the tests. Both create .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
EXTRAS ?= test,finetune
# The CPU build of PyTorch for fine-tuning on the CPU. On a CUDA machine: make setup TORCH=torch
TORCH  ?= torch==2.13.0
# The llama.cpp build (README, "Setup"): auto = native (every feature of this CPU except AMX; metal on Apple
# Silicon), portable (x86-64-v3, for images that move between machines), cuda, metal. The last choice is kept in
# $(VENV)/.llama-profile, so `make test` after `make setup LLAMA=cuda` keeps the CUDA build.
LLAMA  ?= $(shell cat $(VENV)/.llama-profile 2>/dev/null || echo auto)
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)-$(LLAMA)

.PHONY: setup browser test report clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel

# llama-cpp-python is built by the kit, not by pip: once per machine and profile (about 10 minutes on 2 cores)
# into KIT_HOME/wheels/<key>/ (~/.cache/kit), keyed by version, profile, CMake arguments, compiler and CPU, and
# installed from there with --no-deps; --only-binary then keeps pip from ever compiling it. The probe runs one
# tiny inference in a child process and stops the setup with the signal's name and the fix if it cannot run here.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m kit.cli.llama install --profile $(LLAMA) --no-probe
	$(PY) -m pip install --progress-bar off --only-binary llama-cpp-python '$(TORCH)' -e '.[$(EXTRAS)]'
	$(PY) -m kit.cli.llama probe
	echo $(LLAMA) > $(VENV)/.llama-profile
	rm -f $(VENV)/.installed-*; touch $(STAMP)

setup: $(STAMP)

# Debian's chromium opens the rendered report in the tests (installed when missing and run as root).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "The report test needs Chromium: sudo apt-get install chromium (Debian/Ubuntu)"; fi; }

# one pytest worker per core (at most 4), each kept to its own cores (tests/conftest.py), a module per worker
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)

test: setup browser
	$(PY) -m pytest -q -n $(WORKERS) --dist loadscope

report: setup
	$(VENV)/bin/kit report

clean:
	rm -rf $(VENV) runs
