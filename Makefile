# Two newcomer commands, each creating the virtual environment it needs:
#   make demo   - the main job on this CPU machine (embedded default task and model, no download)
#   make test   - the test suite (what .ci/run runs)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TEST_ENV := OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false

.PHONY: setup demo test test-fast clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# The CPU build of torch first, so no dependency pulls a CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[all,dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	# --overwrite: re-running the demo replaces its own earlier results (only the files it wrote)
	$(VENV)/bin/minimal-rl compare --output-dir outputs/compare --overwrite

test: setup
	$(TEST_ENV) $(PY) -m pytest

test-fast: setup
	$(TEST_ENV) $(PY) -m pytest -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info
