# The README's two commands: `make repro` (the pipeline) and `make test` (the tests).
# Both set themselves up first (scripts/setup.sh: WordNet, venv, dependencies; idempotent).
VENV ?= $(if $(OVLAB_VENV),$(OVLAB_VENV),.venv)
export OVLAB_VENV := $(VENV)
export PATH := $(abspath $(VENV))/bin:$(PATH)
PYTEST_ARGS ?=

.PHONY: setup repro test data clean-reports lab lock

setup:
	@bash scripts/setup.sh

# Command 1: reproduce the pipeline on the embedded (synthetic) data, offline.
repro: setup data
	dvc repro

# The embedded dataset pinned by data.dvc, from the in-repo DVC remote (.dvcstore).
data: setup
	dvc pull -q data.dvc

# Command 2: the test suite.
test: setup
	python -m pytest $(PYTEST_ARGS)

clean-reports:
	rm -rf reports results

# Exploring: JupyterLab in the venv on the repo. Stage notebooks are saved clean (ovlab.notebook.pre_save_hook:
# no outputs, committed metadata) and, opened by hand, write to .cache/ovlab/scratch/ instead of the DVC outputs.
LAB_ARGS ?=
lab: setup
	jupyter lab --notebook-dir=. --FileContentsManager.pre_save_hook=ovlab.notebook.pre_save_hook $(LAB_ARGS)

# Re-resolve pyproject.toml's ranges in a scratch venv and write the exact versions to requirements.lock
# (what scripts/setup.sh installs). Commit the lock with the dvc.lock of a `make repro` made from it.
LOCK_VENV ?= /tmp/ovlab-lock-venv
lock:
	rm -rf $(LOCK_VENV)
	OVLAB_UNLOCKED=1 OVLAB_VENV=$(LOCK_VENV) bash scripts/setup.sh
	bash scripts/write_lock.sh $(LOCK_VENV) requirements.lock
