# Two commands for a newcomer: `make demo` and `make test`. Both do all set-up themselves:
# a virtual environment with the pinned dependencies (.venv), then the ament/rosidl build of
# msg/ and the Python package into ./install (what colcon would do on a robot).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.requirements.stamp
BUILD_STAMP := build/.vla_ros_installed
PYTEST_ARGS ?=

.PHONY: help setup build test demo bench docs clean distclean

help:
	@echo "make demo   - set up, build, and run the embedded demo (synthetic bag -> train -> eval report)"
	@echo "make test   - set up, build, and run the test suite"
	@echo "make bench  - run the benchmarks in bench/"
	@echo "make docs   - regenerate docs/configuration.md from the config schema"
	@echo "make clean  - remove build/ and install/ (keeps .venv)"

$(STAMP): requirements.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

setup: $(STAMP)

build: setup
	@scripts/build.sh

test: build
	@source ./setup.bash && python -m pytest test $(PYTEST_ARGS)

demo: build
	@source ./setup.bash && vla-ros demo

bench: build
	@source ./setup.bash && for b in bench/*_bench.py; do echo "== $$b"; python $$b || exit 1; done

docs: build
	@source ./setup.bash && vla-ros config --doc > docs/configuration.md

clean:
	rm -rf build install

distclean: clean
	rm -rf $(VENV)
