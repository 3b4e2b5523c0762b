//go:build js && wasm

package webgpu

import (
	"testing"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/backendtest"
	"github.com/residual-go/residual/core/weights"
)

// TestConformance runs the conformance harness on the WebGPU backend.
func TestConformance(t *testing.T) {
	d := device(t)
	backendtest.Run(t, func(p *core.Program, w *weights.Weights) (core.Backend, error) {
		return New(d, p, w, Options{})
	}, backendtest.Cases())
}
