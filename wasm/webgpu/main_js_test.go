//go:build js && wasm

package webgpu

import (
	"os"
	"testing"
)

// testDevice is shared by the tests (pipelines compile once per device).
var testDevice *Device

// TestMain opens the device. Without navigator.gpu (the plain js/wasm run
// of make test-wasm) the GPU tests skip, unless RESIDUAL_WEBGPU_REQUIRED is
// set, as make webgpu-test sets it (with Dawn and SwiftShader).
func TestMain(m *testing.M) {
	d, err := OpenDevice(DeviceOptions{})
	if err != nil {
		if os.Getenv("RESIDUAL_WEBGPU_REQUIRED") != "" {
			println("webgpu tests: no device:", err.Error())
			os.Exit(1)
		}
		println("webgpu tests: skipping the GPU tests:", err.Error())
	} else {
		testDevice = d
		println("webgpu tests: adapter", d.Adapter.String())
	}
	os.Exit(m.Run())
}

func device(t testing.TB) *Device {
	t.Helper()
	if testDevice == nil {
		t.Skip("no WebGPU device (run make webgpu-test)")
	}
	return testDevice
}
