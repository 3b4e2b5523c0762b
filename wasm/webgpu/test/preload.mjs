// preload.mjs gives node the browser's navigator.gpu through Dawn's node
// bindings (npm webgpu), so that Go's js/wasm code sees WebGPU as it does in
// a page. Loaded with NODE_OPTIONS="--import /abs/path/preload.mjs" before
// go_js_wasm_exec starts the test binary (see wasm/webgpu/webgpu.mk).
//
// Dawn needs a Vulkan driver: on a machine without a GPU, point
// VK_ICD_FILENAMES at SwiftShader's ICD (Debian's chromium installs
// /usr/lib/chromium/vk_swiftshader_icd.json); webgpu.mk does.
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals); // GPUBufferUsage, GPUMapMode, GPUShaderStage, ...
globalThis.navigator ??= {};
const flags = (process.env.RESIDUAL_DAWN_FLAGS || '').split(';').filter(Boolean);
Object.defineProperty(globalThis.navigator, 'gpu', { value: create(flags), configurable: true });
