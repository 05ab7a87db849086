# alster_mapping — pip-only development environment (no ROS distro needed).
#
#   make test        set everything up (first time: ~10-15 min, mostly building
#                    MinkowskiEngine), then run the test suite
#   make test-fast   same, without tests marked `slow`
#   make demo        run `alster demo` into build/demo
#   make bench       run every bench/bench_*.py, JSON into build/bench
#   make setup       only set up (.venv); idempotent and fast once done
#   make clean       remove build outputs and caches (keeps .venv)
#   make distclean   clean + remove .venv
#
# Variables / environment:
#   PYTEST_ARGS='-k foo -x'  extra pytest arguments for `make test`
#   ALSTER_SKIP_ME=1         do not build MinkowskiEngine (tests that need it
#                            must skip themselves)
#   ALSTER_SKIP_APT=1        do not check/install the Debian packages
#   ME_MAX_JOBS=2            parallel compile jobs for MinkowskiEngine (each
#                            needs ~2-3 GB of memory)
#   ALSTER_SKIP_INTERFACES=1 do not build the tf2_msgs / vision_msgs interface
#                            packages (a sourced ROS distro provides them)
#   PYTHON=python3.11        interpreter used to create .venv
#   TORCH_INDEX_URL=...      extra index holding torch 2.13.0+cpu, for
#                            machines without it in pip's find-links
#
# Every pip install below passes -c requirements/constraints.txt: any torch
# spec other than exactly 2.13.0 pulls several GB of CUDA packages.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
.NOTPARALLEL:

VENV        := .venv
PY          := $(VENV)/bin/python
CONSTRAINTS := requirements/constraints.txt
REQUIREMENTS := requirements/requirements.txt
INTERFACE_TOOLS := requirements/interfaces.txt
PYTHON      ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)

ME_VERSION  := 0.5.4
ME_MAX_JOBS ?= 2
ME_IMPORT_CHECK := import collections, collections.abc; collections.Sequence = collections.abc.Sequence; import MinkowskiEngine

APT_PACKAGES := libusb-1.0-0 libopenblas-dev libgl1 libegl1 libgl1-mesa-dri libgomp1 cmake g++

TORCH_INDEX_URL ?=
PIP_INSTALL := $(PY) -m pip install --disable-pip-version-check --progress-bar off \
               -c $(CONSTRAINTS) $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL))

# pip output lines not worth showing (the machine's pip config names extra
# file:// indexes that hold only some packages).
PIP_QUIET := 2>&1 | { grep -Ev 'is ignored: it is neither a file nor a directory|^Requirement already satisfied|^Looking in (indexes|links)' || true; }

# One environment for test / demo / bench.
RUN_ENV := OMP_WAIT_POLICY=PASSIVE \
           AMENT_PREFIX_PATH="$(CURDIR)/$(VENV)" \
           ROS_LOCALHOST_ONLY=1 \
           ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST \
           ROS_LOG_DIR="$(CURDIR)/build/ros_log" \
           PYTHONUNBUFFERED=1

PYTEST_ARGS ?=

STAMP_APT  := $(VENV)/.stamp-apt
STAMP_VENV := $(VENV)/.stamp-venv
STAMP_DEPS := $(VENV)/.stamp-deps
STAMP_ME   := $(VENV)/.stamp-me
STAMP_PKG  := $(VENV)/.stamp-pkg
STAMP_IFACES := $(VENV)/.stamp-interfaces

# Sources of the interface packages built into .venv (interfaces/).
IFACE_INPUTS := $(INTERFACE_TOOLS) $(wildcard interfaces/*.py interfaces/cmake/*.cmake \
                  interfaces/*/package.xml interfaces/*/CMakeLists.txt interfaces/*/msg/*.msg interfaces/*/srv/*.srv)

# Files whose change needs a re-install of this package (data_files are
# copied into .venv/share/alster_mapping even for an editable install).
PKG_INPUTS := setup.py setup.cfg package.xml resource/alster_mapping \
              $(wildcard alster_mapping/__init__.py launch/*.py config/*.yaml \
                         config/*.rviz config/labelspaces/*.yaml config/train/*.yaml models/*)

SETUP_STAMPS := $(if $(filter 1,$(ALSTER_SKIP_APT)),,$(STAMP_APT)) \
                $(STAMP_VENV) $(STAMP_DEPS) \
                $(if $(filter 1,$(ALSTER_SKIP_ME)),,$(STAMP_ME)) \
                $(if $(filter 1,$(ALSTER_SKIP_INTERFACES)),,$(STAMP_IFACES)) \
                $(STAMP_PKG)

.PHONY: help setup test test-fast demo bench clean distclean

help:
	@awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' $(firstword $(MAKEFILE_LIST))

setup: $(SETUP_STAMPS)
	@if [[ "$(ALSTER_SKIP_ME)" == 1 ]]; then \
	  echo "setup: ALSTER_SKIP_ME=1, MinkowskiEngine not built"; fi

# (a) Debian packages needed at run time by open3d / torch / MinkowskiEngine,
# plus pythonX.Y-venv when the interpreter cannot create a venv with pip.
$(STAMP_APT):
	@if [[ -z "$(PYTHON)" ]]; then \
	  echo "error: no python3.11 or python3 on PATH (set PYTHON=...)" >&2; exit 1; fi
	@if ! command -v dpkg-query >/dev/null 2>&1; then \
	  echo "warning: not a Debian-like system; make sure the equivalents of" \
	       "'$(APT_PACKAGES)' are installed (ALSTER_SKIP_APT=1 silences this)" >&2; \
	else \
	  missing=(); \
	  for p in $(APT_PACKAGES); do \
	    [[ "$$(dpkg-query -W -f='$${db:Status-Status}' "$$p" 2>/dev/null)" == installed ]] \
	      || missing+=("$$p"); \
	  done; \
	  if ! "$(PYTHON)" -c 'import ensurepip' >/dev/null 2>&1; then \
	    missing+=("python$$("$(PYTHON)" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"); \
	  fi; \
	  if (( $${#missing[@]} )); then \
	    if [[ "$$(id -u)" == 0 ]]; then sudo=(); \
	    elif command -v sudo >/dev/null 2>&1 && { [[ -t 0 ]] || sudo -n true 2>/dev/null; }; then \
	      sudo=(sudo); \
	    else \
	      echo "error: missing Debian packages: $${missing[*]}" >&2; \
	      echo "error: run as root:  apt-get update && apt-get install -y --no-install-recommends $${missing[*]}" >&2; \
	      echo "error: (or set ALSTER_SKIP_APT=1 if they are provided otherwise)" >&2; \
	      exit 1; \
	    fi; \
	    echo "setup: installing Debian packages: $${missing[*]}"; \
	    "$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
	    "$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends "$${missing[@]}"; \
	  fi; \
	fi
	@mkdir -p $(VENV) && touch $@

# (b) the virtual environment
$(STAMP_VENV): | $(if $(filter 1,$(ALSTER_SKIP_APT)),,$(STAMP_APT))
	@if [[ -z "$(PYTHON)" ]]; then \
	  echo "error: no python3.11 or python3 on PATH (set PYTHON=...)" >&2; exit 1; fi
	@"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { \
	  echo "error: $(PYTHON) is Python $$("$(PYTHON)" -V 2>&1); need >= 3.10 (3.11 preferred)" >&2; exit 1; }
	@"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	  echo "warning: $(PYTHON) is not Python 3.11; the pins in $(CONSTRAINTS) were made for 3.11" >&2
	@if [[ ! -x $(PY) ]] || ! $(PY) -m pip --version >/dev/null 2>&1; then \
	  echo "setup: creating $(VENV) with $(PYTHON)"; \
	  "$(PYTHON)" -m venv $(VENV); \
	fi
	@touch $@

# (c) pinned dependencies (torch CPU, ROS 2 Jazzy wheels, open3d, ...)
$(STAMP_DEPS): $(REQUIREMENTS) $(CONSTRAINTS) $(STAMP_VENV)
	@echo "setup: installing $(REQUIREMENTS) into $(VENV)"
	@$(PIP_INSTALL) -q -r $(REQUIREMENTS) $(PIP_QUIET)
	@touch $@

# (d) MinkowskiEngine, built from source against this torch (CPU, OpenBLAS).
# Its Python code does `from collections import Sequence`, hence the shim in
# the import check. pip's wheel cache makes re-installs fast.
$(STAMP_ME): $(STAMP_DEPS)
	@if $(PY) -W ignore -c "$(ME_IMPORT_CHECK)" >/dev/null 2>&1; then \
	  echo "setup: MinkowskiEngine already importable"; \
	else \
	  echo "setup: building MinkowskiEngine $(ME_VERSION) (CPU only; ~10 min on 2 cores the first time)"; \
	  MAX_JOBS=$(ME_MAX_JOBS) $(PIP_INSTALL) --no-build-isolation \
	    "minkowskiengine==$(ME_VERSION)" \
	    -C--global-option="--blas=openblas --cpu_only" $(PIP_QUIET); \
	  $(PY) -W ignore -c "$(ME_IMPORT_CHECK)"; \
	fi
	@touch $@

# (e) tf2_msgs and vision_msgs: no PyPI wheel has them, so their message definitions
# (interfaces/) are generated and compiled into .venv with the ROS 2 Jazzy rosidl
# generators and ament CMake tools from PyPI (about 25 s on 2 cores); a sourced ROS
# distro's packages are used instead when importable. With them the node takes camera
# poses from /tf and /tf_static and publishes vision_msgs.
$(STAMP_IFACES): $(IFACE_INPUTS) $(STAMP_DEPS)
	@echo "setup: building the interface packages tf2_msgs and vision_msgs into $(VENV)"
	@$(PIP_INSTALL) -q -r $(INTERFACE_TOOLS) $(PIP_QUIET)
	@$(PY) interfaces/build_interfaces.py --prefix $(VENV) --build-dir build/interfaces --force
	@touch $@

# (f) this package, editable (PEP 660; --use-pep517 because setuptools 80's
# legacy `setup.py develop` rejects the ament [develop] section of setup.cfg);
# its dependencies come from requirements/. PEP 660 editable installs skip
# data_files, so install those (ament index marker, package.xml, launch,
# config, models) into .venv/share by hand: with AMENT_PREFIX_PATH=.venv,
# get_package_share_directory('alster_mapping') then works as under colcon.
$(STAMP_PKG): $(PKG_INPUTS) $(STAMP_DEPS)
	@echo "setup: installing alster_mapping (editable)"
	@$(PIP_INSTALL) -q --no-deps --no-build-isolation --use-pep517 -e . $(PIP_QUIET)
	@rm -rf $(VENV)/share/alster_mapping
	@log=$$(mktemp); \
	if ! $(PY) -W ignore setup.py -q install_data -d $(VENV) >"$$log" 2>&1; then \
	  cat "$$log" >&2; rm -f "$$log"; exit 1; fi; \
	rm -f "$$log"
	@touch $@

test: setup
	@mkdir -p build/ros_log
	env $(RUN_ENV) $(PY) -m pytest -q test $(PYTEST_ARGS)

test-fast: setup
	@mkdir -p build/ros_log
	env $(RUN_ENV) $(PY) -m pytest -q test -m "not slow" $(PYTEST_ARGS)

demo: setup
	@mkdir -p build/ros_log build/demo
	env $(RUN_ENV) $(VENV)/bin/alster demo --out build/demo

bench: setup
	@mkdir -p build/ros_log build/bench
	@shopt -s nullglob; scripts=(bench/bench_*.py); failed=(); \
	if (( ! $${#scripts[@]} )); then echo "bench: no bench/bench_*.py"; exit 0; fi; \
	for s in "$${scripts[@]}"; do \
	  echo "== $$s"; \
	  env $(RUN_ENV) $(PY) "$$s" --out build/bench || failed+=("$$s"); \
	done; \
	if (( $${#failed[@]} )); then echo "bench: failed: $${failed[*]}" >&2; exit 1; fi

clean:
	rm -rf build .pytest_cache *.egg-info $(STAMP_PKG)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
