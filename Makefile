# tfbox: the two commands in the README are `make up` and `make test`; the rest are helpers.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= dev
# Shell-quote a make variable's raw value: a STACK with spaces, quotes or `;` stays one argument.
# $(value ...) keeps `$` from being expanded by make; quote's result is not expanded again.
quote = '$(subst ','\'',$(value $(1)))'
# Not into the recipes' environment either: make would expand their values there.
unexport STACK NAME HOST SEAT OUT PYTHON_VERSION

.PHONY: up test unit lint e2e preview pr-preview fleet machine password destroy outputs tls local-docker reference doctor repair status docs docs-build gpu-proof-bundle

# Runtime dependencies are all `make up` needs; the test tools come on top for `make test`.
$(VENV)/.runtime: requirements.txt
	python3 -m venv $(VENV) >&2
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt >&2
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt >&2
	touch $@

## Deploy a stack (default: dev) with the state backend in .state/.
up: $(VENV)/.runtime
	scripts/up.sh $(call quote,STACK)

## Everything CI runs: lint, type check, unit tests, then the real-engine tests.
test: $(VENV)/.dev
	scripts/test.sh

unit: lint
	$(PY) -m pytest tests --ignore=tests/e2e

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

e2e: $(VENV)/.dev
	scripts/test.sh --e2e-only

## Show what `pulumi up` would change on a machine, with the policy pack (make preview STACK=gpu-box).
preview: $(VENV)/.runtime
	scripts/preview.sh $(call quote,STACK)

## What the PR workflow posts, rehearsed here: make pr-preview BASE=origin/main (comments in .tfbox/pr-preview/).
pr-preview: $(VENV)/.runtime
	$(PY) scripts/pr-preview.py --base "$(BASE)"

## One action on every machine stack at once: make fleet ACTION=preview|up|refresh|status [MACHINES=a,b]
fleet: $(VENV)/.runtime
	$(PY) scripts/fleet.py --action "$(ACTION)" $(if $(MACHINES),--machines "$(MACHINES)")

# STACK only when given on the command line (its default is dev): without it, every stack.
only_stack = $(if $(filter file,$(origin STACK)),,--stack $(call quote,STACK))

## What is wrong with each lab's containers, in words, with the fix: make doctor [STACK=gpu-box] (exit 1 if anything is).
doctor: $(VENV)/.runtime
	$(PY) scripts/doctor.py $(only_stack)

## Per seat: URLs, health, GPUs with memory, utilisation and whose processes hold them: make status [STACK=gpu-box] [JSON=1]
## (exit 0 fine, 1 a problem, 3 a GPU idle while memory is held; docs/status.md).
status: $(VENV)/.runtime
	@$(PY) scripts/status.py $(only_stack) $(if $(JSON),--json)

## Replace exactly the broken lab containers through Pulumi (notebooks and logs kept): make repair [STACK=gpu-box]
repair: $(VENV)/.runtime
	$(PY) scripts/doctor.py --repair $(only_stack)

## Add a machine: make machine NAME=gpu-box-2 HOST=ssh://me@gpu-box-2
machine: $(VENV)/.runtime
	scripts/new-machine.sh $(call quote,NAME) $(call quote,HOST)

## `make password` prints the password alone on stdout (the recipe line is not echoed; logs go to stderr);
## on a stack with seats: make password STACK=gpu-box SEAT=alice.
password outputs destroy: $(VENV)/.runtime
	@scripts/up.sh $(call quote,STACK) --$@ $(if $(SEAT),$(call quote,SEAT))

## A self-signed certificate for a stack's notebook, made once and kept in its config (make tls STACK=gpu-box).
tls: $(VENV)/.runtime
	scripts/up.sh $(call quote,STACK) --tls

## A private Docker daemon, registry and a locally built TensorFlow image, for hosts that cannot reach Docker Hub.
local-docker:
	scripts/local-docker.sh

## Regenerate the config reference (docs/configuration.md) and Pulumi.yaml's typed config from components/model/keys.py.
reference: $(VENV)/.runtime
	$(PY) -m tools.reference --write

## The docs site (docs/, mkdocs.yml) at http://127.0.0.1:8000/, rebuilt as you edit.
docs: $(VENV)/.dev
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

## Build the docs site into build/site/, failing on any broken link or anchor (also part of `make test`).
docs-build: $(VENV)/.dev
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict
## The GPU proof's bundle for a GPU host without network (docs/gpu-proof.md); then, there, as root: <OUT>/run.sh
## make gpu-proof-bundle [OUT=build/gpu-proof] [PYTHON_VERSION=3.12 (the GPU host's Python)]
OUT ?= build/gpu-proof
PYTHON_VERSION ?= 3.12
gpu-proof-bundle:
	TFBOX_GPU_PROOF_PYTHON_VERSION=$(call quote,PYTHON_VERSION) scripts/gpu-proof/bundle.sh $(call quote,OUT)
