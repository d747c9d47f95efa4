# fhevm-dagster: the two commands of the README, and what they are made of.
#   make demo   local devnet with real fhEVM contracts, demo traffic, `dagster dev` with sensors on
#   make test   everything installed, lint, then the test suite (PostgreSQL included; CI's tier)
#   make test-full  the same with the costliest cases too (before changing tfhe-py/ or compute/)
# Caches live outside the clone, so repeat runs are fast: the virtual environment, the cargo target
# directory of tfhe-py, derived server keys and the devnet state under ~/.cache/fhevm-dagster.

SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/fhevm-dagster
VENV ?= $(CACHE)/venv
PY := $(VENV)/bin/python
export CARGO_TARGET_DIR ?= $(CACHE)/cargo-target
export DAGSTER_HOME ?= $(CACHE)/dagster_home
PORT ?= 3000
METRICS_PORT ?= 9464
TRANSFERS ?= 6
BLOCK_TIME ?= 2
RANGE_SIZE ?= 5
PYTEST_ARGS ?=
# Two pytest workers (pytest-xdist), each test module whole on one (its module fixtures once): the
# devnet, fault and install tests wait on blocks, daemons and downloads for most of their time, and
# the other worker computes meanwhile. PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2

.PHONY: demo test test-full test-fast install system python node tfhe-py tfhe-py-gpu lint fmt bench demo-down lock

# The demo chains mine a block every BLOCK_TIME seconds and ranges are RANGE_SIZE blocks, so a
# new range is ready every ~10 s. Chosen with benchmarks/latency.py (2-s blocks, block of a transfer
# to its commit on the gateway, p50/p95): 21/30 s at 1 block, 25/39 s at 5, 57/66 s at 20; ranges
# without logs get no run, but under steady traffic 1-block ranges mean a run (~2 s of process
# start) per block.
demo: install
	$(VENV)/bin/fhevm-dagster devnet up --block-time $(BLOCK_TIME) --env-file .env
	$(VENV)/bin/fhevm-dagster traffic --transfers $(TRANSFERS)
	mkdir -p $(DAGSTER_HOME) && cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	@echo "Dagster UI: http://127.0.0.1:$(PORT)  (sensors on; Ctrl-C stops Dagster, 'make demo-down' stops the devnet)"
	@echo "Metrics: http://127.0.0.1:$(METRICS_PORT)/metrics"
	$(VENV)/bin/fhevm-dagster metrics serve --port $(METRICS_PORT) & metrics=$$!; trap "kill $$metrics" EXIT; \
	PATH=$(VENV)/bin:$$PATH FHEVM_DAGSTER_HOST_RANGE_SIZE=$(RANGE_SIZE) FHEVM_DAGSTER_GATEWAY_RANGE_SIZE=$(RANGE_SIZE) \
		$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

demo-down:
	$(VENV)/bin/fhevm-dagster devnet down

# `make test` is CI's tier: every part of the suite, with the costliest cases of the slow parts left
# to `make test-full` (FHEVM_DAGSTER_FULL=1), which must pass before a change to tfhe-py/ or
# compute/ lands. Each phase prints its wall time (and appends it to $(PHASES)).
PHASES ?= $(CACHE)/phases.log
timed = s=$$(date +%s); $(2); rc=$$?; printf 'phase %-8s %5d s%s\n' $(1) $$(( $$(date +%s) - s )) \
	"$$( [ $$rc -eq 0 ] || echo " (exit $$rc)" )" | { mkdir -p $(dir $(PHASES)); tee -a $(PHASES); }; exit $$rc
sub = $(MAKE) --no-print-directory

test:
	@$(call timed,system,$(sub) system)
	@$(call timed,node,$(sub) node)
	@$(call timed,python,$(sub) python)
	@$(call timed,tfhe-py,$(sub) tfhe-py)
	@$(call timed,lint,$(sub) lint)
	@$(call timed,pytest,$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS))

test-full:
	FHEVM_DAGSTER_FULL=1 $(sub) test

# The fast tier: the tests that need no devnet, no PostgreSQL and no FHE keys (the `fast` marker
# is derived from those needs, tests/tiers.py). Assumes `make install` was run once.
test-fast:
	$(VENV)/bin/pytest -m fast $(PYTEST_ARGS)

install: system node python tfhe-py

# Debian packages: the PostgreSQL server the tests start their own clusters from.
system:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing PostgreSQL from Debian packages"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; \
	fi

# anvil, solcjs, the fhEVM contracts and node-tfhe, pinned by package-lock.json. `npm install`, not
# `npm ci`: the lock holds anvil's linux-amd64 binary package only (the other platforms' optional
# packages are not on the registry mirror), which `npm ci` refuses as out of sync.
node:
	@if ! cmp -s package-lock.json node_modules/.installed-lock.json; then \
		npm install --no-audit --no-fund && cp package-lock.json node_modules/.installed-lock.json; \
	fi

# The pinned set of requirements.txt, then the package without resolving (its tfhe-py comes from the
# tfhe-py target); `make lint` runs `pip check`: the installed set must satisfy pyproject.toml.
python:
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q -e '.[dev]' --no-deps

# requirements.txt, the lock of pyproject.toml: a fresh venv from pyproject.toml alone ('.[dev]';
# tfhe-py==0.1.0 resolved from the wheel of `make tfhe-py`), constrained by the current pins so they
# move only where pyproject.toml requires (UPGRADE=1: everything re-resolved to the newest allowed),
# checked with `pip check`, frozen without the package itself and tfhe-py.
LOCK_VENV ?= $(CACHE)/lock-venv
lock:
	@ls $(CACHE)/wheels/tfhe_py-0.1.0-*.whl >/dev/null 2>&1 || \
		{ echo "no tfhe-py wheel in $(CACHE)/wheels: run 'make install' (or 'make tfhe-py') first"; exit 1; }
	rm -rf $(LOCK_VENV) && python3 -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q --upgrade pip
	$(LOCK_VENV)/bin/pip install -q --find-links $(CACHE)/wheels $(if $(UPGRADE),,-c requirements.txt) -e '.[dev]'
	$(LOCK_VENV)/bin/pip check
	{ printf '%s\n' \
		'# Pinned Python dependencies of fhevm-dagster: what pyproject.toml (with [dev]) resolves to,' \
		'# tfhe-py (our local wheel, `make tfhe-py`) left out. Generated, do not edit; regenerate with' \
		'#   make lock            (a fresh venv from pyproject.toml, constrained by these pins)' \
		'#   make lock UPGRADE=1  (everything re-resolved to the newest versions pyproject.toml allows)'; \
		$(LOCK_VENV)/bin/pip freeze --exclude-editable --exclude tfhe-py; } > requirements.txt.tmp
	mv requirements.txt.tmp requirements.txt
	rm -rf $(LOCK_VENV)

# The Rust build of tfhe-py (release; the target dir is cached, so an unchanged crate is a no-op).
# Clippy lints the crate inside this build (clippy-driver as the workspace's rustc wrapper, warnings
# denied: what `cargo clippy -- -D warnings` checks): a separate `cargo clippy` type-checks every
# dependency again, 3-4 minutes on a fresh machine. A crate that built here passed clippy.
tfhe-py:
	@clippy=$$(rustup which clippy-driver) || { echo "clippy is required: rustup component add clippy"; exit 1; }; \
	cd tfhe-py && RUSTC_WORKSPACE_WRAPPER=$$clippy \
		$(VENV)/bin/maturin build --release --compatibility linux -o $(CACHE)/wheels -- -D warnings
	$(PY) -m pip install -q --force-reinstall --no-deps $$(ls -t $(CACHE)/wheels/tfhe_py-*.whl | head -1)

# The CUDA wheel of tfhe-py (feature `gpu`, device code for sm_$(CUDA_ARCH): the H100/H200), into
# $(CACHE)/wheels-gpu; not installed here (this machine has no GPU) and not part of `make test`.
# CUDA 13.0's compiler comes from NVIDIA's Python wheels. The first build took 95 min on 2 cores
# (at nice 19 beside other work), a rebuild after a change to the crate 1-11 min; the wheel is 25 MiB.
CUDA_ARCH ?= 90
tfhe-py-gpu:
	CUDA_ARCH=$(CUDA_ARCH) FHEVM_DAGSTER_CACHE=$(CACHE) tfhe-py/build-gpu.sh

lint:
	$(PY) -m pip check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd tfhe-py && cargo fmt --check

fmt:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	cd tfhe-py && cargo fmt

bench: install
	$(PY) benchmarks/tfhe_ops.py
	$(PY) benchmarks/vs_reference.py --sizes 10
	$(PY) benchmarks/squash_commit.py
