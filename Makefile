# SeHAT OPD — two commands: `make run` (demo) and `make test` (whole suite).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
VAR := $(CURDIR)/var
PORT ?= 8000
DATABASE_NAME ?= sehat
# sqlite:// (default, no server needed) or postgresql:///
DATABASE_URI ?= sqlite://
CONF := $(CURDIR)/trytond.conf

# trytond reads trytond.conf after the environment: deployment values are
# given here, not in the file (see trytond.conf).
export TRYTOND_DATABASE__URI := $(DATABASE_URI)
export TRYTOND_DATABASE__PATH := $(VAR)/db
export TRYTOND_WEB__ROOT := $(VAR)/sao
export TRYTOND_WEB__LISTEN := 127.0.0.1:$(PORT)
export TRYTOND_SEHAT_OPD__BASE_URL ?= http://127.0.0.1:$(PORT)

# Server processes (not trytond-admin, whose database creation breaks with
# it) tell each other at once of a cache change (a doctor added to an OPD)
# through PostgreSQL's NOTIFY, instead of trytond's default of at most every
# 5 minutes: the web server and the cron are two processes.
SERVE_ENV := TRYTOND_CACHE__CLEAN_TIMEOUT=0

# trytond-cron cannot write from several jobs on SQLite (one writer, one
# outer transaction): scripts/cron.py runs the same jobs one by one there.
ifneq (,$(findstring sqlite,$(DATABASE_URI)))
CRON = $(BIN)/python scripts/cron.py -c $(CONF) -d $(DATABASE_NAME)
else
CRON = $(BIN)/trytond-cron -c $(CONF) -d $(DATABASE_NAME) -v
endif

TEST_DATABASE_URI ?= postgresql://
TEST_ENV = TRYTOND_DATABASE__URI=$(TEST_DATABASE_URI) \
	TRYTOND_DATABASE_URI=$(TEST_DATABASE_URI) \
	TRYTOND_DATABASE__PATH=$(VAR)/test-files \
	DB_CACHE=$(VAR)/test-cache \
	DB_CACHE_JOBS=2 \
	TRYTOND_CONFIG=$(CONF)

.PHONY: help run test install install-test sao chromium postgresql clean

help:
	@echo "make run    install, build the demo database and serve http://127.0.0.1:$(PORT)/"
	@echo "make test   install and run the whole test suite on PostgreSQL"

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 'setuptools>=64'
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

sao: $(VAR)/sao/.sao-version

$(VAR)/sao/.sao-version: scripts/install_sao.sh
	scripts/install_sao.sh $(VAR)/sao

run: install sao
	$(BIN)/python scripts/setup_db.py -c $(CONF) -d $(DATABASE_NAME) --demo
	@$(BIN)/python scripts/banner.py $(PORT) $(DATABASE_NAME)
	@$(SERVE_ENV) $(CRON) & cron=$$!; \
	trap 'kill $$cron 2>/dev/null; wait $$cron 2>/dev/null' EXIT; \
	$(SERVE_ENV) $(BIN)/trytond -c $(CONF) -d $(DATABASE_NAME) -v

# Browsers, PDF/QR tools, the Devanagari font of the prescriptions and the
# database server the suite needs; installed when missing (as root, from
# Debian's packages).
chromium:
	@command -v chromium >/dev/null || { \
		echo "Installing Debian's chromium..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium poppler-utils zbar-tools fonts-noto-core >/dev/null; }
	@{ command -v pdftoppm && command -v zbarimg; } >/dev/null || DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq poppler-utils zbar-tools >/dev/null
	@test -f /usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-core >/dev/null

postgresql:
	@scripts/ensure_postgresql.sh

test: install-test sao chromium postgresql
	rm -rf $(VAR)/test-cache $(VAR)/test-files
	mkdir -p $(VAR)/test-files
	$(TEST_ENV) DB_NAME=test_modules_$$$$ $(BIN)/python -m pytest -q \
		sehat_opd/tests sehat_opd_video/tests sehat_opd_sms/tests
	$(TEST_ENV) $(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VAR)
