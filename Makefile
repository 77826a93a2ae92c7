# GeoDispatch — `make help` lists the targets. Every target bootstraps what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
STAMP_VENV  := $(VENV)/.installed
CACHE       := .cache
JARS_STAMP  := $(CACHE)/jars/.installed
OPERATORS_JAR := $(CACHE)/jars/flink/geodispatch-operators.jar
OPERATORS_SRC := $(wildcard flink_jobs/jvm/geodispatch/*.java)
TEST_JARS_STAMP := $(CACHE)/jars/flink-test/.installed
MVN         := mvn -q -B -Dmaven.repo.local=$(CURDIR)/$(CACHE)/m2

KAFKA_BOOTSTRAP ?= 127.0.0.1:9092
JOBMANAGER      ?= 127.0.0.1:8081
PARTITIONS      ?= 4
SOURCE          ?= data/sample
SPEED           ?= 3600
# The event time `make replay` and `make jobs` both start at: one clock for prices and jobs (a replay
# from the sample's first record, 12 h earlier, would put the watermark ahead of every job).
START           ?= 2018-01-01T00:00:00Z
BUCKET          ?= geodispatch
PREFIX          ?= sample
RATE            ?= 20
COUNT           ?= 500
SEED            ?= 7
DASHBOARD_PORT  ?= 8501
PYTEST_ARGS     ?=
BENCH_ARGS      ?=
export KAFKA_BOOTSTRAP JOBMANAGER

.PHONY: help setup venv jars test-jars operators-jar sample-data demo down reset test test-unit kafka-up kafka-down topics \
        cluster-up cluster-down job job-local passthrough replay upload-sample jobs dashboard s3-up s3-down s3-env \
        bench bench-dispatch bench-replay k8s-validate lint

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

# ---------------------------------------------------------------- setup (idempotent)
setup: venv jars operators-jar ## Install the venv, Python packages and the Maven jars; compile our Java operators

venv: $(STAMP_VENV) ## Create .venv and install requirements.txt
$(STAMP_VENV): requirements.txt
	@command -v python3 >/dev/null || { echo "error: python3 not found: install Python 3.11"; exit 2; }
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -r requirements.txt
	@touch $@

jars: $(JARS_STAMP) ## Fetch the Kafka broker and Flink connector jars from Maven Central
$(JARS_STAMP): deploy/maven/kafka/pom.xml deploy/maven/flink/pom.xml
	@command -v java >/dev/null || { echo "error: java not found: install OpenJDK 17 or newer (apt-get install openjdk-17-jdk-headless)"; exit 2; }
	@command -v mvn >/dev/null || { echo "error: mvn not found: install Maven (apt-get install maven)"; exit 2; }
	@rm -rf $(CACHE)/jars/kafka $(CACHE)/jars/flink
	@$(MVN) -f deploy/maven/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(CACHE)/jars/kafka
	@$(MVN) -f deploy/maven/flink/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DexcludeTransitive=true -DoutputDirectory=$(CURDIR)/$(CACHE)/jars/flink
	@touch $@

test-jars: $(TEST_JARS_STAMP) ## Fetch Flink's operator test harness jars (for the Java operators' tests)
$(TEST_JARS_STAMP): deploy/maven/flink-test/pom.xml
	@command -v mvn >/dev/null || { echo "error: mvn not found: install Maven (apt-get install maven)"; exit 2; }
	@rm -rf $(CACHE)/jars/flink-test
	@$(MVN) -f deploy/maven/flink-test/pom.xml dependency:copy-dependencies -DexcludeTransitive=true -DoutputDirectory=$(CURDIR)/$(CACHE)/jars/flink-test
	@touch $@

operators-jar: $(OPERATORS_JAR) ## Compile flink_jobs/jvm (the job's Java operators) against PyFlink's own Flink jar
$(OPERATORS_JAR): $(OPERATORS_SRC) udfs/weather_limits.properties $(STAMP_VENV) $(JARS_STAMP)
	@command -v javac >/dev/null || { echo "error: javac not found: install a JDK 17 or newer (apt-get install openjdk-17-jdk-headless)"; exit 2; }
	@rm -rf $(CACHE)/jvm-classes && mkdir -p $(CACHE)/jvm-classes
	@javac --release 11 -Xlint:all -Werror -d $(CACHE)/jvm-classes \
	  -cp "$$($(PY) -c 'import pathlib, pyflink; lib = pathlib.Path(pyflink.__file__).parent / "lib"; print(*[*lib.glob("flink-dist-*.jar"), *lib.glob("flink-table-api-java-uber-*.jar")], sep=":")')" \
	  $(OPERATORS_SRC)
	@jar cf $@ -C $(CACHE)/jvm-classes . -C udfs weather_limits.properties

sample-data: $(STAMP_VENV) ## Build data/sample from pinned registry packages (SMARD prices, EPW weather)
	@$(PY) -m sources.sample_data

# ---------------------------------------------------------------- local services
kafka-up: setup ## Start the local Kafka 4.x broker (KRaft) on 127.0.0.1:9092 (KAFKA_PORT)
	@$(PY) -m deploy.local.kafka_broker up

kafka-down: ## Stop the local Kafka broker
	@$(PY) -m deploy.local.kafka_broker down

topics: $(STAMP_VENV) ## Create the contract's topics (PARTITIONS=4)
	@$(PY) -m deploy.local.kafka_broker topics --partitions $(PARTITIONS)

cluster-up: setup ## Start a standalone Flink session cluster, REST on 127.0.0.1:8081
	@$(PY) -m deploy.local.flink_cluster up

cluster-down: ## Stop the standalone Flink cluster
	@$(PY) -m deploy.local.flink_cluster down

job: setup ## Submit the dispatch job with `flink run --python` to JOBMANAGER
	@$(PY) -m deploy.local.flink_cluster submit --jobmanager $(JOBMANAGER) --module flink_jobs.dispatch_job -- $(JOB_ARGS)

job-local: setup ## Run the dispatch job on an embedded mini-cluster (foreground)
	@$(PY) -m flink_jobs.dispatch_job $(JOB_ARGS)

passthrough: setup ## Run the passthrough job (prices -> prices-out) on an embedded mini-cluster
	@$(PY) -m flink_jobs.passthrough $(JOB_ARGS)

s3-up: $(STAMP_VENV) ## Start a local S3 server (S3Proxy) on 127.0.0.1:9000 (S3_PORT): eval "$(make s3-up)" exports AWS_*
	@$(PY) -m deploy.local.s3_server up

s3-down: ## Stop the local S3 server
	@$(PY) -m deploy.local.s3_server down

s3-env: $(STAMP_VENV) ## Print the local S3 server's AWS_* exports again (for another shell)
	@$(PY) -m deploy.local.s3_server env

# ---------------------------------------------------------------- data in
# --speed and --max exclude each other: SPEED=max gives --max, and --max in REPLAY_ARGS drops --speed.
REPLAY_PACE = $(if $(filter max,$(SPEED)),--max,$(if $(filter --max,$(REPLAY_ARGS)),,--speed $(SPEED)))

replay: $(STAMP_VENV) ## Replay history into Kafka: SOURCE=data/sample|s3://bucket/prefix START=... SPEED=3600|max REPLAY_ARGS=...
	@$(PY) -m sources.replay --source $(SOURCE) --start $(START) $(REPLAY_PACE) $(REPLAY_ARGS)

upload-sample: sample-data ## Upload data/sample to s3://BUCKET/PREFIX with boto3 (AWS_ENDPOINT_URL honoured)
	@$(PY) -m sources.upload --bucket $(BUCKET) --prefix $(PREFIX)

jobs: $(STAMP_VENV) ## Stream synthetic job submissions (RATE, COUNT, SEED, START)
	@$(PY) -m sources.jobs --rate $(RATE) --count $(COUNT) --seed $(SEED) --start $(START) $(JOBS_ARGS)

dashboard: $(STAMP_VENV) ## Serve the Streamlit page on 127.0.0.1:8501 (DASHBOARD_PORT)
	@$(PY) -m streamlit run dashboard/app.py --server.address 127.0.0.1 --server.port $(DASHBOARD_PORT) --server.headless true

# ---------------------------------------------------------------- the whole thing
demo: setup sample-data ## Kafka + topics + dispatch job + replay + jobs + page, in the background
	@$(PY) -m deploy.local.demo up

down: ## Stop everything the targets above started (by recorded PID)
	@test -x $(PY) && $(PY) -m deploy.local.demo down || true

reset: ## After `make down`: remove the topics' data and the job's state (the next run starts clean)
	@if test -x $(PY); then $(PY) -m deploy.local.demo reset; fi

# ---------------------------------------------------------------- quality
test: setup test-jars sample-data ## Run the whole test suite (unit + integration with real Kafka and Flink)
	@$(PY) -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP_VENV) test-jars ## Unit tests only (no Kafka, no Flink)
	@$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: $(STAMP_VENV) ## ruff
	@$(PY) -m ruff check .

bench: setup sample-data ## All benchmarks; writes docs/BENCHMARKS.md (BENCH_ARGS=--quick: small, nothing written)
	@$(PY) -m bench.run_all $(BENCH_ARGS)

bench-dispatch: $(STAMP_VENV) ## Dispatch solver benchmark (jobs x sites grid)
	@$(PY) -m bench.bench_dispatch

bench-replay: setup sample-data ## Replay producer rate into a local broker
	@$(PY) -m bench.bench_replay

k8s-validate: $(STAMP_VENV) ## Validate deploy/k8s offline: kubeconform + pinned CRD/core schemas
	@$(PY) -m deploy.k8s.validate
