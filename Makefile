# labflow: `make run` installs everything and runs the quick-profile pipeline;
# `make test` installs everything and runs the tests (what .ci/run calls).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FASHION := /usr/share/datasets/fashion-mnist
export DVC_NO_ANALYTICS := 1
export PATH := $(CURDIR)/$(BIN):$(PATH)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-fast setup system-data ui server report bench plots

run: setup ## install, then run the whole pipeline (quick profile)
	$(BIN)/dvc repro

setup: $(STAMP) system-data

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "labflow needs $(PYTHON) (set PYTHON=...)"; exit 1; }
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# Fashion-MNIST for the quick profile comes from Debian; skipped where apt is missing
# (the full profile downloads it instead).
system-data:
	@if [ ! -d $(FASHION) ] && command -v apt-get >/dev/null; then \
		echo "installing Debian package dataset-fashion-mnist"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq dataset-fashion-mnist; \
	fi
	@# Headless Chromium: the tests open the offline report and the MLflow UI in a real browser.
	@if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then \
		echo "installing Debian package chromium"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; \
	fi
	@# The team server's tests start a private PostgreSQL cluster (initdb, pg_ctl); they skip without it.
	@if ! { command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } && command -v apt-get >/dev/null; then \
		echo "installing Debian package postgresql"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; \
	fi
	@# Lab 16's (and 24, 25's) verse pairs: diatheke with the KJV and Reina-Valera 1909 modules.
	@if ! { command -v diatheke >/dev/null && [ -f /usr/share/sword/mods.d/engKJV2006eb.conf ] && \
		[ -f /usr/share/sword/mods.d/spaRV1909eb.conf ]; } && command -v apt-get >/dev/null; then \
		echo "installing Debian packages diatheke sword-text-kjv sword-text-sparv"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq diatheke sword-text-kjv sword-text-sparv; \
	fi

test: setup ## all tests, including the end-to-end DVC smoke runs
	$(BIN)/python -m pytest -q

test-fast: setup ## unit tests only
	$(BIN)/python -m pytest -q -m "not slow"

ui: setup ## MLflow UI on the pipeline's store, http://127.0.0.1:5000
	$(BIN)/labflow ui

server: setup ## team tracking server: MLflow on PostgreSQL (private cluster under server/), http://127.0.0.1:5000
	$(BIN)/labflow server

report: setup ## offline HTML report of every lab: report/index.html (opens from disk, no network)
	$(BIN)/labflow report

bench: setup ## training-loop speed against the course's way of feeding data
	$(BIN)/python benchmarks/loop_speed.py

# dvc plots with vega inlined (DVC's default page needs a CDN). Needs node/npm once.
VEGA := .cache/vega
$(VEGA)/template.html:
	npm install --silent --no-audit --no-fund --prefix $(VEGA) vega@5 vega-lite@5 vega-embed@6
	$(BIN)/python -m labflow.plots.offline_html $(VEGA)

plots: setup $(VEGA)/template.html ## all dvc.yaml plots as offline HTML in plots/index.html
	$(BIN)/dvc plots show --html-template $(VEGA)/template.html -o plots
