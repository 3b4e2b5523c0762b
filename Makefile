# residual: every workflow is a make target. `make help` lists them.
#
# The project needs Go 1.27.3 with the portable simd package. A machine starts on
# its own Go and ignores go.mod's toolchain line, so both are exported here: the go
# command fetches go1.27.3 from the module proxy on first use.
export GOTOOLCHAIN := go1.27.3
export GOEXPERIMENT ?= simd
GO ?= go

# The go command's wasm runner (go_js_wasm_exec) lives in GOROOT/lib/wasm.
# (make before 4.4 does not pass exported variables to $(shell): name the toolchain.)
WASM_EXEC_DIR = $(shell GOTOOLCHAIN=$(GOTOOLCHAIN) GOEXPERIMENT=$(GOEXPERIMENT) $(GO) env GOROOT)/lib/wasm
WASM_ENV = GOOS=js GOARCH=wasm PATH="$(WASM_EXEC_DIR):$$PATH"

# Packages whose tests also run as js/wasm under node (pure Go, no os/exec).
WASM_TEST_PKGS = ./core/... ./wasm/...

# Model used by the demo and the browser/worker tests.
MODEL ?= resnet50

.PHONY: help deps test check build vet fmt-check tidy-check test-go test-scalar test-wasm fuzz \
        golden bench weights synthetic demo clean

help:
	@echo "make demo       official ResNet-50 if downloadable, else a synthetic one; build and serve the page"
	@echo "make test       every test: Go (simd, scalar, wasm), fuzz smoke, browser, worker, WebGPU (runs make deps first)"
	@echo "make deps       check the Debian packages the tests need; as root, install the missing ones"
	@echo "make golden     recompute the float64 reference outputs the e2e tests compare with (e2e/testdata/golden)"
	@echo "make check      build for host and js/wasm, vet, gofmt, go mod tidy, then make test"
	@echo "make bench      benchmark table (latency, GFLOP/s, memory, converter throughput)"
	@echo "make weights    download + verify + convert the official ResNet-50 into weights/resnet50"
	@echo "make synthetic  generate a random-weight ResNet-50 (real Caffe format) into weights/resnet50"
	@echo "make synthetic-all  also ResNet-101 and -152 (weights/resnet{101,152}-synthetic)"
	@echo "make webgpu-test  the WebGPU backend's tests in node with Dawn (SwiftShader without a GPU)"
	@echo "make bench-gpu  ResNet-50/101/152 per-image time through the WebGPU backend, adapter named"
	@echo "make web | serve | worker-dev | deploy   see README.md"

## ---- tests -----------------------------------------------------------------

test: deps test-go test-scalar test-wasm fuzz web-test worker-test webgpu-test

# The system packages the tests need (chromium, libonnx-testdata, node, npm, a
# Go that can fetch go1.27.3): tools/deps.sh installs the missing ones when run
# as root on Debian, and otherwise prints the apt-get command and stops.
deps:
	@bash tools/deps.sh

# Everything natively with the simd kernels, including e2e/: the generated
# ResNet-50/101/152, converted, against the float64 reference's committed
# outputs (e2e/testdata/golden), and Caffe's LeNet on MNIST.
test-go:
	$(GO) test -count=1 -timeout 40m ./...

# The scalar twins of the simd kernels (build tag !goexperiment.simd). -short:
# a test that takes minutes skips itself in the repeated runs (the ResNet
# end-to-end runs live in e2e/, which test-go runs once).
test-scalar:
	GOEXPERIMENT=nosimd $(GO) test -count=1 -short -timeout 20m ./core/...

# The same packages compiled to js/wasm and run under node, with and without simd.
test-wasm:
	$(WASM_ENV) $(GO) test -count=1 -short -timeout 20m $(WASM_TEST_PKGS)
	$(WASM_ENV) GOEXPERIMENT=nosimd $(GO) test -count=1 -short -timeout 20m ./core/kernels/...

# A short run of every fuzz target (seeded from testdata); `make fuzz FUZZTIME=5m` for longer.
FUZZTIME ?= 10s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=1s $$pkg; \
	  done; \
	done

## ---- checks ----------------------------------------------------------------

check: build vet fmt-check tidy-check test

build:
	$(GO) build ./...
	GOOS=js GOARCH=wasm $(GO) build ./...
	GOEXPERIMENT=nosimd $(GO) build ./...

vet:
	$(GO) vet ./...
	GOOS=js GOARCH=wasm $(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go') $$(git ls-files --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

tidy-check:
	@cp go.mod /tmp/residual-go.mod.bak; cp go.sum /tmp/residual-go.sum.bak; \
	$(GO) mod tidy; \
	if ! cmp -s go.mod /tmp/residual-go.mod.bak || ! cmp -s go.sum /tmp/residual-go.sum.bak; then \
	  echo "go mod tidy changed go.mod/go.sum: commit the tidied files"; exit 1; fi

# The float64 reference outputs of e2e/ recomputed and rewritten (minutes);
# the e2e tests fail, naming this, when a golden file no longer matches the
# model, the inputs or the reference that made it.
golden:
	$(GO) test -count=1 -timeout 60m -run 'TestEndToEnd' ./e2e -update

## ---- benchmarks --------------------------------------------------------------

bench:
	$(GO) run ./tools/bench

## ---- models ------------------------------------------------------------------

weights:
	bash tools/convert/fetch-official.sh weights/resnet50

# A ResNet-50 with seeded random weights, written in the real Caffe format and
# converted like the official one. Its predictions are meaningless.
synthetic: weights/resnet50-synthetic/manifest.json

weights/resnet50-synthetic/manifest.json:
	mkdir -p weights/downloads
	$(GO) run ./tools/convert/caffe/fixture/cmd/gencaffe -prototxt weights/prototxt/ResNet-50-deploy.prototxt \
	  -seed 1 -out weights/downloads/ResNet-50-synthetic.caffemodel \
	  -mean weights/downloads/ResNet-50-synthetic-mean.binaryproto
	$(GO) run ./tools/convert -force -synthetic -name "ResNet-50 (synthetic)" \
	  -caffemodel weights/downloads/ResNet-50-synthetic.caffemodel \
	  -mean weights/downloads/ResNet-50-synthetic-mean.binaryproto \
	  -prototxt weights/prototxt/ResNet-50-deploy.prototxt -labels weights/synset_words.txt \
	  -out weights/resnet50-synthetic

demo:
	@if $(MAKE) --no-print-directory weights; then :; else \
	  echo; echo "demo: the official weights could not be downloaded; using a SYNTHETIC ResNet-50 (random weights, meaningless predictions)"; echo; \
	  $(MAKE) --no-print-directory synthetic; fi
	$(MAKE) --no-print-directory web
	$(MAKE) --no-print-directory serve

clean:
	rm -rf dist bin

-include web/web.mk
-include wasm/worker/worker.mk
-include wasm/webgpu/webgpu.mk
