# dalib: two commands.
#   make run    the main job: the notebook series in the `full` profile, then runs/full/report.md
#   make test   unit tests + every notebook under nbval in the `fast` profile
#   make reproduce  the long experiments: the 3-seed ablation, notebook 06's side runs, the regime map
# Both create .venv on first use and install into it; nothing else on the machine is touched.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.dalib-installed

# timm imports torchvision at import time, so torch and torchvision must be a matching pair.
# On this CPU dev box (x86_64, Python 3.11) pip takes this pair from local disk, no download;
# the CPU-only torch 2.13.0 wheel has no torchvision that imports beside it. Override for
# other machines, e.g. `make test TORCH_SPEC="torch==2.9.1 torchvision==0.24.1"` on aarch64,
# or TORCH_SPEC= (empty) to keep whatever torch the environment has (Colab).
ARCH := $(shell uname -m)
ifeq ($(ARCH),aarch64)
TORCH_SPEC ?= torch==2.9.1 torchvision==0.24.1
else
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
endif

export OMP_NUM_THREADS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: run test install unit notebooks reproduce lint clean-runs

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (first time: a few minutes) ..."
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/pip install -q $(TORCH_SPEC); fi
	@# the distribution was renamed dalib -> dalib-edu (PyPI's dalib is another project): drop an old install
	@$(BIN)/pip uninstall -q -y dalib 2>/dev/null || true
	$(BIN)/pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	DALIB_PROFILE=full $(BIN)/python -m dalib run-notebooks --profile full

test: unit notebooks

unit: $(STAMP)
	DALIB_PROFILE=fast $(BIN)/python -m pytest tests/ -q

notebooks: $(STAMP)
	DALIB_PROFILE=fast $(BIN)/python -m pytest --nbval-lax --nbval-current-env -q -p no:cacheprovider notebooks/

# The long experiments, after `make run` (they reuse its seed-0 checkpoints; each step resumes
# or skips what is done): the 3-seed Table 9 ablation (variants a-d and the optional row e,
# trimmed pseudo labels; runs/full/ablation/), the
# α and placement side runs of notebook 06, the regime map (the full method's gain over the
# labeled-only model at unlabeled:labeled ratios 1, 4 and the whole pool (26.7), with and without strong
# perturbation, on the validation domains), then notebooks 06 and 07 again so that they and
# runs/full/report.md show everything. Hours on the 2-core dev machine (README: measured).
STUDENT := DALIB_PROFILE=full $(BIN)/python -m dalib train-student --profile full --resume
reproduce: $(STAMP)
	DALIB_PROFILE=full $(BIN)/python -m dalib ablation --profile full --variants a b c d e
	$(STUDENT) --name student_feat_a100 --feature-alignment synthetic --margin 1.0
	$(STUDENT) --name student_feat_a070 --feature-alignment synthetic --margin 0.7
	$(STUDENT) --name student_feat_labeled --feature-alignment synthetic --align-on labeled
	$(STUDENT) --name student_aux --no-feature-alignment --aux-segmentation synthetic
	DALIB_PROFILE=full $(BIN)/python -m dalib ablation --profile full --regime 1 4
	DALIB_PROFILE=full $(BIN)/python -m dalib run-notebooks --profile full --only 06 07 09

lint: $(STAMP)
	$(BIN)/ruff check dalib tests benchmarks

clean-runs:
	rm -rf runs/fast
