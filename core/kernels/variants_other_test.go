//go:build !goexperiment.simd || !amd64 || noasm

package kernels

import "testing"

// eachVariant runs f once: this build has one GEMM implementation.
func eachVariant(t testing.TB, f func(name string)) {
	t.Helper()
	f(Impl())
}
