package backendtest

import (
	"testing"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/weights"
)

// TestCPU runs the harness on the CPU executor in its other configuration
// (float16-resident weights, residual sums fused into the convolutions, two
// threads) against the reference configuration.
func TestCPU(t *testing.T) {
	Run(t, func(p *core.Program, w *weights.Weights) (core.Backend, error) {
		o := p.Options
		o.FuseResidual = true
		fused, err := core.Compile(p.Manifest, o)
		if err != nil {
			return nil, err
		}
		return core.NewCPU(fused, w, core.CPUOptions{Threads: 2})
	}, Cases())
}

// TestHarnessCatchesBugs: a backend that is wrong in small ways fails.
func TestHarnessCatchesBugs(t *testing.T) {
	for _, bug := range []struct {
		name string
		edit func(out []float32)
	}{
		{"one value off by 2e-4 of the range (one wrong term of 4608)", func(out []float32) {
			var rng float32
			for _, v := range out {
				rng = max(rng, v, -v)
			}
			out[len(out)/2] += 2e-4 * rng
		}},
		{"a NaN", func(out []float32) { out[0] = float32(nanValue()) }},
	} {
		ft := &fakeT{T: t}
		cs := Cases()
		var c Case
		for _, x := range cs {
			if x.Name == "conv/3x3-s1-28" {
				c = x
			}
		}
		p, read := c.Load(t)
		cpu, err := core.NewCPU(p, read(), core.CPUOptions{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		in := make([]float32, p.InputSize())
		for i := range in {
			in[i] = float32(i%7) - 3
		}
		out, _ := cpu.Run(in, 1)
		want := append([]float32(nil), out.Values...)
		got := append([]float32(nil), want...)
		bug.edit(got)
		Compare(ft, bug.name, got, want, c.Tol)
		if !ft.failed {
			t.Errorf("%s: Compare passed", bug.name)
		}
		cpu.Close()
	}
}

func nanValue() float64 { var z float64; return z / z }

// fakeT records failures instead of failing the test.
type fakeT struct {
	*testing.T
	failed bool
}

func (f *fakeT) Errorf(string, ...any) { f.failed = true }
func (f *fakeT) Helper()               {}
