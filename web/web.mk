# web/web.mk: the browser demo (issue 4), included by the top-level Makefile,
# which exports GOTOOLCHAIN=go1.27.3 and GOEXPERIMENT=simd and provides the
# `synthetic` model target.
#
#   make web        build the static site into dist/web: the page, both .wasm
#                   builds, wasm_exec.js, and every model under weights/*/
#   make serve      serve dist/web on $(SERVE_ADDR) (building it if missing);
#                   prints the address
#   make web-test   the bridge's Go tests as scalar js/wasm in node (the simd
#                   run is part of test-wasm), then the page in headless
#                   Chromium (web/test: node --test + playwright-core)
#   make web-bench  the page's speed in headless Chromium: load from cache,
#                   one image, a 16-image drop on one worker and on the pool
#                   (web/test/bench.mjs; figures, not pass/fail)
#
# web-test uses $(WEB_TEST_MODEL), a synthetic ResNet-50 (make synthetic);
# `make web` then ships it with any other converted model.

GO ?= go
NODE ?= node
NPM ?= npm
CHROMIUM ?= /usr/bin/chromium
WEB_DIST ?= dist/web
WEB_WASM_DIR ?= dist/wasm
WEB_BIN ?= dist/bin
WEIGHTS_DIR ?= weights
SERVE_ADDR ?= 127.0.0.1:8080
WEB_TEST_MODEL ?= $(WEIGHTS_DIR)/resnet50-synthetic
WASM_LDFLAGS ?= -s -w

.PHONY: web serve web-test web-wasm-test web-browser-test web-bench web-clean

# Two builds of one program: the simd kernels (WASM SIMD128) and their scalar
# twins (build tag !goexperiment.simd). The worker picks one at run time.
web:
	GOOS=js GOARCH=wasm GOEXPERIMENT=simd $(GO) build -trimpath -ldflags="$(WASM_LDFLAGS)" \
		-o $(WEB_WASM_DIR)/residual-simd.wasm ./wasm/browser
	GOOS=js GOARCH=wasm GOEXPERIMENT=nosimd $(GO) build -trimpath -ldflags="$(WASM_LDFLAGS)" \
		-o $(WEB_WASM_DIR)/residual-scalar.wasm ./wasm/browser
	$(GO) run ./tools/webbuild -out $(WEB_DIST) -web web -weights $(WEIGHTS_DIR) \
		-simd $(WEB_WASM_DIR)/residual-simd.wasm -scalar $(WEB_WASM_DIR)/residual-scalar.wasm \
		-wasm-exec "$$($(GO) env GOROOT)/lib/wasm/wasm_exec.js"

$(WEB_DIST)/index.html:
	$(MAKE) --no-print-directory web

serve: $(WEB_DIST)/index.html
	$(GO) run ./tools/serve -addr $(SERVE_ADDR) -dir $(WEB_DIST)

# The browser bridge end to end (loader, core.Open, classify) with the scalar
# kernels, compiled to js/wasm and run by node.
web-wasm-test:
	PATH="$$($(GO) env GOROOT)/lib/wasm:$$PATH" GOOS=js GOARCH=wasm GOEXPERIMENT=nosimd \
		$(GO) test -count=1 ./wasm/jsbridge ./wasm/browser

web/test/node_modules/.package-lock.json: web/test/package.json web/test/package-lock.json
	cd web/test && $(NPM) ci --no-audit --no-fund

# The page in real Chromium: model load and progress, drop / file input /
# keyboard / paste compared with tools/classify, error cards, responsiveness,
# cache on reload, clear cache, scalar build, sub-path, offline; and with
# WebGPU on (webgpu.test.mjs): ?backend=webgpu against ?backend=cpu, and the
# default choosing the CPU on Chromium's software adapter.
web-browser-test: $(WEB_TEST_MODEL)/manifest.json web/test/node_modules/.package-lock.json
	$(MAKE) --no-print-directory web
	$(GO) build -o $(WEB_BIN)/serve ./tools/serve
	$(GO) build -o $(WEB_BIN)/classify ./tools/classify
	cd web/test && RESIDUAL_SITE=$(abspath $(WEB_DIST)) RESIDUAL_MODEL=$(notdir $(WEB_TEST_MODEL)) \
		RESIDUAL_MODEL_DIR=$(abspath $(WEB_TEST_MODEL)) RESIDUAL_SERVE=$(abspath $(WEB_BIN)/serve) \
		RESIDUAL_CLASSIFY=$(abspath $(WEB_BIN)/classify) CHROMIUM=$(CHROMIUM) \
		$(NODE) --test --test-concurrency=1 *.test.mjs

web-test: web-wasm-test web-browser-test

web-bench: $(WEB_TEST_MODEL)/manifest.json web/test/node_modules/.package-lock.json
	$(MAKE) --no-print-directory web
	$(GO) build -o $(WEB_BIN)/serve ./tools/serve
	cd web/test && RESIDUAL_SITE=$(abspath $(WEB_DIST)) RESIDUAL_MODEL=$(notdir $(WEB_TEST_MODEL)) \
		RESIDUAL_MODEL_DIR=$(abspath $(WEB_TEST_MODEL)) RESIDUAL_SERVE=$(abspath $(WEB_BIN)/serve) \
		CHROMIUM=$(CHROMIUM) $(NODE) bench.mjs

web-clean:
	rm -rf $(WEB_DIST) $(WEB_WASM_DIR) web/test/artifacts
