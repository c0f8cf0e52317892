# hemsync: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 5000
DB ?= var/hemsync.db

.PHONY: run test venv clean demo bench load soak faults fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

run: $(STAMP)
	$(BIN)/python -m server --db $(DB) serve --demo --host $(HOST) --port $(PORT)

# Three laptops go offline, conflict in every way, come back and agree with the server.
demo: $(STAMP)
	PYTHONPATH=. $(BIN)/python scripts/demo.py

# The proof (issue 6): figures and trials anyone can re-run; see README "Performance and robustness".
N ?= 20000
LAPTOPS ?= 50
DURATION ?= 120
REQUESTS ?= 10000

# PAGE_PATIENTS / PAGE_REQUESTS: the region the people's pages are timed on (after the demo region);
# FOLLOWUP_SCALE: the share of a year of a region the follow-up report is timed on (1 = 10,000 patients,
# 50,000 visits, 5,000 stays); FHIR_PATIENTS: the patients of the timed FHIR bulk export.
PAGE_PATIENTS ?= 50000
# LAPTOP_PATIENTS / LAPTOP_REQUESTS: the doctor's caseload the laptop's pages are timed on (about 20 records a
# patient: 5,000 make the issue's 100,000), and how many of them have a request assigned to her.
LAPTOP_PATIENTS ?= 5000
LAPTOP_REQUESTS ?= 20
PAGE_REQUESTS ?= 5000
FOLLOWUP_SCALE ?= 1
FHIR_PATIENTS ?= 50000
# PEER: the CouchDB-replication peer run side by side on the same N (issue 14); it lives in the shared
# folder beside the repository, not in it: where it (or Node) is missing the bench says so and goes on.
# PEER= leaves it out.
PEER ?= ../shared/bench-peer
# SCALE=1000000: then the same N against a server already holding that many records (on the same store:
# SQLite, or POSTGRES= a second scratch database there), with memory.
SCALE ?=

bench: $(STAMP)
	$(BIN)/python -m proof.bench --n $(N) $(if $(POSTGRES),--postgres $(POSTGRES)) $(if $(PEER),--peer $(PEER)) $(if $(SCALE),--scale $(SCALE))
	$(BIN)/python -m proof.page_timings --patients $(PAGE_PATIENTS) --requests $(PAGE_REQUESTS)
	$(BIN)/python -m proof.laptop_page_timings --patients $(LAPTOP_PATIENTS) --requests $(LAPTOP_REQUESTS)
	$(BIN)/python -m proof.followup_bench --scale $(FOLLOWUP_SCALE)
	$(BIN)/python -m proof.fhir_export --n $(FHIR_PATIENTS)

# POSTGRES=postgresql://... serves from a scratch database there with WORKERS= processes (default 4).
# ALLOW_BUSY=1: 503 with Retry-After is backpressure, not failure (dropped connections still fail).
# REPEAT=N: N runs one after another, each on a fresh server, and the medians of their latencies.
load: $(STAMP)
	$(BIN)/python -m proof.load --laptops $(LAPTOPS) --duration $(DURATION) $(if $(INTERVAL),--interval $(INTERVAL)) \
		$(if $(ALLOW_BUSY),--allow-busy) $(if $(REPEAT),--repeat $(REPEAT)) $(if $(POSTGRES),--postgres $(POSTGRES) --workers $(or $(WORKERS),4))

# 200 laptops every 30 s for SOAK_MINUTES (default 60); fails if the server's memory or open files grow.
SOAK_MINUTES ?= 60
soak: $(STAMP)
	$(BIN)/python -m proof.soak --minutes $(SOAK_MINUTES)

# TRIALS= trials (default 200); SEED= reruns from that seed (one trial unless TRIALS= is given).
# POSTGRES=URL serves from a scratch database there with WORKERS= processes (default 4);
# PG_RESTART=1 instead makes a throwaway PostgreSQL cluster and restarts it mid-push too.
faults: $(STAMP)
	$(BIN)/python -m proof.faults $(if $(TRIALS),--trials $(TRIALS)) $(if $(SEED),--seed $(SEED)) \
		$(if $(POSTGRES),--postgres $(POSTGRES) --workers $(or $(WORKERS),4)) \
		$(if $(filter 1,$(PG_RESTART)),--restart-postgres --workers $(or $(WORKERS),4))

fuzz: $(STAMP)
	$(BIN)/python -m proof.fuzz --requests $(REQUESTS) $(if $(SEED),--seed $(SEED)) \
		$(if $(POSTGRES),--postgres $(POSTGRES))

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
