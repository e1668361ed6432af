# Two commands for a newcomer: `make demo` and `make test`. Both do all set-up themselves:
# a virtual environment with the pinned dependencies (.venv), then the ament/rosidl build of
# msg/ and the Python package into ./install (what colcon would do on a robot).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.requirements.stamp
BUILD_STAMP := build/.vla_ros_installed
PYTEST_ARGS ?=

# Offscreen rendering of the MuJoCo simulator (vla_ros/sim) on a CPU: Mesa's software EGL (Debian packages).
GL_PACKAGES := libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri

.PHONY: help setup sysdeps build lint test demo bench docs clean distclean

help:
	@echo "make demo   - set up, build, and run the embedded demo (simulator demonstrations -> train -> closed-loop report)"
	@echo "make test   - set up, lint (ruff), build, and run the test suite"
	@echo "make lint   - ruff check (ruff.toml: pycodestyle + pyflakes, 120 columns)"
	@echo "make bench  - run the benchmarks in bench/"
	@echo "make docs   - regenerate docs/configuration.md from the config schema"
	@echo "make clean  - remove build/ and install/ (keeps .venv)"

$(STAMP): requirements.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

# Installs $(GL_PACKAGES) with apt-get when one is missing and we are root; otherwise says what to install
# (the simulator tests skip without rendering). Nothing happens when they are all present.
sysdeps:
	@missing=""; for p in $(GL_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Mesa EGL for offscreen rendering:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "note: Mesa EGL packages missing ($$missing); the simulator cannot render. As root: apt-get install -y --no-install-recommends$$missing"; fi

setup: sysdeps $(STAMP)

build: setup
	@scripts/build.sh

lint: setup
	$(VENV)/bin/ruff check .

test: lint build
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
