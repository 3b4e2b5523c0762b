# wasm/webgpu/webgpu.mk: the WebGPU backend's tests and benchmark (issue 9),
# included by the top-level Makefile (which exports GOTOOLCHAIN and
# GOEXPERIMENT).
#
#   make webgpu-test    the package's native tests, then its js/wasm tests in
#                       node with Dawn (npm webgpu): the conformance harness,
#                       the tile variants, the fallback ladder, a broken
#                       shader, an exhausted limit, device loss, and the
#                       generated ResNet-50 against the CPU path
#   make bench-gpu      ResNet-50/101/152 (generated) per-image time through
#                       the backend, batch 1 and 10, with the adapter named
#   make synthetic-all  the generated ResNet-101 and -152 besides make synthetic
#
# Dawn needs a Vulkan driver. Without a GPU it uses SwiftShader's, installed
# with Debian's chromium (VK_ICD_FILENAMES below, and chromium's libvulkan
# when the system has none); on a GPU machine set VK_ICD_FILENAMES to the
# driver's ICD file. BENCH_RUNS, BENCH_WARMUP, BENCH_BATCHES and
# BENCH_MODELS tune bench-gpu.

GO ?= go
NPM ?= npm
VK_ICD_FILENAMES ?= /usr/lib/chromium/vk_swiftshader_icd.json
WEBGPU_DIR := wasm/webgpu
WEBGPU_ENV = GOOS=js GOARCH=wasm PATH="$$($(GO) env GOROOT)/lib/wasm:$$PATH" \
	LD_LIBRARY_PATH="$${LD_LIBRARY_PATH:+$$LD_LIBRARY_PATH:}/usr/lib/chromium" \
	VK_ICD_FILENAMES=$(VK_ICD_FILENAMES) NODE_OPTIONS="--import $(abspath $(WEBGPU_DIR)/test/preload.mjs)"
BENCH_RUNS ?= 20
BENCH_WARMUP ?= 2
BENCH_BATCHES ?= 1,10
BENCH_MODELS ?= weights/resnet50-synthetic,weights/resnet101-synthetic,weights/resnet152-synthetic

.PHONY: webgpu-test bench-gpu synthetic-all

$(WEBGPU_DIR)/test/node_modules/.package-lock.json: $(WEBGPU_DIR)/test/package.json $(WEBGPU_DIR)/test/package-lock.json
	cd $(WEBGPU_DIR)/test && $(NPM) ci --no-audit --no-fund

webgpu-test: weights/resnet50-synthetic/manifest.json $(WEBGPU_DIR)/test/node_modules/.package-lock.json
	$(GO) test -count=1 ./$(WEBGPU_DIR)/...
	$(WEBGPU_ENV) RESIDUAL_WEBGPU_REQUIRED=1 $(GO) test -count=1 -v -timeout 40m ./$(WEBGPU_DIR)

bench-gpu: synthetic-all $(WEBGPU_DIR)/test/node_modules/.package-lock.json
	$(WEBGPU_ENV) $(GO) run ./$(WEBGPU_DIR)/benchgpu -models $(BENCH_MODELS) \
		-runs $(BENCH_RUNS) -warmup $(BENCH_WARMUP) -batches $(BENCH_BATCHES)

synthetic-all: weights/resnet50-synthetic/manifest.json weights/resnet101-synthetic/manifest.json weights/resnet152-synthetic/manifest.json

# ResNet-101 and -152 with seeded random weights, made like make synthetic's ResNet-50.
weights/resnet101-synthetic/manifest.json weights/resnet152-synthetic/manifest.json: weights/resnet%-synthetic/manifest.json:
	mkdir -p weights/downloads
	$(GO) run ./tools/convert/caffe/fixture/cmd/gencaffe -prototxt weights/prototxt/ResNet-$*-deploy.prototxt \
	  -seed 1 -out weights/downloads/ResNet-$*-synthetic.caffemodel \
	  -mean weights/downloads/ResNet-$*-synthetic-mean.binaryproto
	$(GO) run ./tools/convert -force -synthetic -name "ResNet-$* (synthetic)" \
	  -caffemodel weights/downloads/ResNet-$*-synthetic.caffemodel \
	  -mean weights/downloads/ResNet-$*-synthetic-mean.binaryproto \
	  -prototxt weights/prototxt/ResNet-$*-deploy.prototxt -labels weights/synset_words.txt \
	  -out weights/resnet$*-synthetic
