//go:build goexperiment.simd && amd64 && !noasm

package kernels

import "testing"

// eachVariant runs f with every GEMM implementation this machine runs made
// active in turn: each assembly variant the CPU supports, then the simd
// GEMM. It restores the variant chosen at start-up.
func eachVariant(t testing.TB, f func(name string)) {
	t.Helper()
	saved := active
	defer func() { active = saved }()
	for _, v := range availableVariants() {
		active = v
		f(v.name)
	}
	active = nil
	f("simd")
}

func TestBestVariant(t *testing.T) {
	vs := availableVariants()
	if len(vs) == 0 {
		t.Skip("this CPU has neither AVX-512 nor AVX2+FMA: the simd GEMM runs")
	}
	if active != vs[0] || Impl() != vs[0].name {
		t.Fatalf("active variant %q, want the best available, %q", Impl(), vs[0].name)
	}
}

// BenchmarkFMAPeak runs each assembly variant's register-only FMA loop (12
// independent vector FMAs per iteration, no memory operands): the core's
// FMA peak that the GEMM figures are fractions of (make bench).
func BenchmarkFMAPeak(b *testing.B) {
	for _, v := range availableVariants() {
		b.Run(v.name, func(b *testing.B) {
			const iters = 1 << 20
			flops := float64(iters) * 12 * 2 * float64(v.lanes)
			timed(b, flops, "GFLOP/s", true, func() { v.peak(iters) })
		})
	}
}
