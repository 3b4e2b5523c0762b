package kernels

import (
	"math/rand/v2"
	"sync"
	"testing"
)

// TestNoAllocs: in steady state the kernels do not allocate, with a nil
// Runner and with a Runner of 2.
func TestNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	p := conv(16, 14, 14, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1)
	pw := conv(32, 14, 14, 16, 1, 1, 1, 1, 0, 0, 1, 1, 1)
	in, w, bias := randSlice(rng, 32*14*14), randSlice(rng, 32*16*9), randSlice(rng, 32)
	out := make([]float32, 32*14*14)
	scratch := make([]float32, max(ConvScratchSize(p), ConvScratchSize(pw)))
	w16, scratch16 := make([]uint16, len(w)), make([]float32, ConvScratchSizeF16(p))
	fcOut2 := randSlice(rng, 16*14*14) // Conv2DAdd's residual
	pp := pool(true, 32, 14, 14, 3, 3, 2, 2, 1, 1)
	pout := make([]float32, 32*pp.OutH*pp.OutW)
	fc := randSlice(rng, 10*32*14*14)
	fcOut := make([]float32, 10)
	for _, r := range []*Runner{nil, NewRunner(2)} {
		cases := map[string]func(){
			"Conv2D":       func() { Conv2D(r, p, in, w, bias, out, scratch, Act{ReLU: true}) },
			"Conv2D/1x1":   func() { Conv2D(r, pw, out, w, nil, in, scratch, Act{}) },
			"Conv2DF16":    func() { Conv2DF16(r, p, in, w16, bias, out, scratch16, Act{ReLU: true}) },
			"Conv2DAdd":    func() { Conv2DAdd(r, pw, out, w, nil, fcOut2, in, scratch, Act{ReLU: true}) },
			"Pool2D":       func() { Pool2D(r, pp, in, pout) },
			"InnerProduct": func() { InnerProduct(r, in, fc, nil, fcOut, Act{}) },
			"Eltwise":      func() { Eltwise(EltSum, nil, [][]float32{in, out}, out, Act{ReLU: true}) },
			"Softmax":      func() { Softmax(10, 1, fcOut, fcOut) },
			"WidenF16":     func() { WidenF16(out[:100], make([]uint16, 0)) },
		}
		for name, f := range cases {
			if n := testing.AllocsPerRun(5, f); n != 0 {
				t.Errorf("%s with %d threads: %v allocations per call, want 0", name, r.Threads(), n)
			}
		}
		r.Close()
	}
}

// TestRunnerConcurrentCallers: a Runner serializes the calls made through it,
// so two goroutines sharing one get the same results as alone.
func TestRunnerConcurrentCallers(t *testing.T) {
	r := NewRunner(2)
	defer r.Close()
	p := conv(8, 9, 9, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1)
	rng := rand.New(rand.NewPCG(17, 18))
	in, w := randSlice(rng, 8*81), randSlice(rng, 12*8*9)
	want := make([]float32, 12*81)
	Conv2D(nil, p, in, w, nil, want, make([]float32, ConvScratchSize(p)), Act{})
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]float32, len(want))
			scratch := make([]float32, ConvScratchSize(p))
			for range 20 {
				Conv2D(r, p, in, w, nil, out, scratch, Act{})
				for i := range want {
					if out[i] != want[i] {
						errs <- "concurrent Conv2D through one Runner differs from the serial result"
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestRunnerClose(t *testing.T) {
	r := NewRunner(3)
	if r.Threads() != 3 {
		t.Fatalf("Threads() = %d, want 3", r.Threads())
	}
	r.Close()
	r.Close() // idempotent
	defer func() {
		if recover() == nil {
			t.Error("Pool2D on a closed Runner did not panic")
		}
	}()
	Pool2D(r, pool(true, 1, 2, 2, 2, 2, 1, 1, 0, 0), make([]float32, 4), make([]float32, 1))
}

func TestImpl(t *testing.T) {
	switch Impl() {
	case "asm-avx512", "asm-avx2", "simd", "scalar":
	default:
		t.Fatalf("Impl() = %q", Impl())
	}
}
