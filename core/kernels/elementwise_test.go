package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/x448/float16"
)

// elementwiseSizes cross every vector length (4, 8, 16) with tails.
var elementwiseSizes = []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1027}

// TestActivate: exact (one multiply at most), against actRef; both the
// build's kernel and the scalar twin, in place and out of place.
func TestActivate(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	impls := map[string]func(in, out []float32, act Act){Impl(): activate, "generic": activateGeneric, "Activate": Activate}
	for name, f := range impls {
		for _, n := range elementwiseSizes {
			for _, act := range acts {
				in := randSlice(rng, n)
				out := newGuarded(n)
				f(in, out.s()[:n], act)
				what := fmt.Sprintf("%s n=%d act=%v", name, n, act)
				out.check(t, what)
				inPlace := append([]float32(nil), in...)
				f(inPlace, inPlace, act)
				for i, x := range in {
					want := float32(actRef(float64(x), act))
					if out.s()[i] != want || inPlace[i] != want {
						t.Fatalf("%s: [%d] = %v (in place %v), want %v", what, i, out.s()[i], inPlace[i], want)
					}
				}
			}
		}
	}
}

// TestEltwise: SUM with coefficients rounds once per input (tol 1e-6 +
// 1e-6*sum|terms| for up to 3 inputs); PROD and MAX are exact in float64
// terms rounded once. out aliases the first input in half the cases.
func TestEltwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range elementwiseSizes {
		for op := EltSum; op <= EltMax; op++ {
			for nin := 1; nin <= 3; nin++ {
				for _, alias := range []bool{false, true} {
					ins := make([][]float32, nin)
					for i := range ins {
						ins[i] = randSlice(rng, n)
					}
					var coeffs []float32
					if op == EltSum && nin == 3 {
						coeffs = []float32{0.5, -1, 2}
					}
					act := acts[(n+nin)%len(acts)]
					want := make([]float64, n)
					scale := make([]float64, n)
					for i := range want {
						v := float64(ins[0][i])
						if coeffs != nil {
							v *= float64(coeffs[0])
						}
						scale[i] = math.Abs(v)
						for j := 1; j < nin; j++ {
							x := float64(ins[j][i])
							switch op {
							case EltSum:
								if coeffs != nil {
									x *= float64(coeffs[j])
								}
								v += x
								scale[i] += math.Abs(x)
							case EltProd:
								v *= x
							case EltMax:
								v = math.Max(v, x)
							}
						}
						want[i] = actRef(v, act)
					}
					what := fmt.Sprintf("op=%d n=%d inputs=%d alias=%v", op, n, nin, alias)
					var got []float32
					if alias {
						Eltwise(op, coeffs, ins, ins[0], act)
						got = ins[0]
					} else {
						out := newGuarded(n)
						Eltwise(op, coeffs, ins, out.s()[:n], act)
						out.check(t, what)
						got = out.s()
					}
					for i := range want {
						if !closeTo(got[i], want[i], scale[i], 1e-6, 1e-6) {
							t.Fatalf("%s: out[%d] = %v, want %v", what, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

// TestAffine: one multiply-add per value, tol 1e-6 + 1e-6*(|x*s| + |b|).
func TestAffine(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, c := range []struct{ ch, hw int }{{1, 1}, {3, 7}, {5, 17}, {2, 49}} {
		for _, withBias := range []bool{false, true} {
			for _, act := range acts {
				in, scale := randSlice(rng, c.ch*c.hw), randSlice(rng, c.ch)
				var bias []float32
				if withBias {
					bias = randSlice(rng, c.ch)
				}
				out := newGuarded(c.ch * c.hw)
				Affine(c.ch, c.hw, in, scale, bias, out.s()[:c.ch*c.hw], act)
				what := fmt.Sprintf("%dx%d bias=%v act=%v", c.ch, c.hw, withBias, act)
				out.check(t, what)
				for ch := 0; ch < c.ch; ch++ {
					for i := 0; i < c.hw; i++ {
						x := float64(in[ch*c.hw+i]) * float64(scale[ch])
						sc := math.Abs(x)
						if bias != nil {
							x += float64(bias[ch])
							sc += math.Abs(float64(bias[ch]))
						}
						if got := out.s()[ch*c.hw+i]; !closeTo(got, actRef(x, act), sc, 1e-6, 1e-6) {
							t.Fatalf("%s: out[%d][%d] = %v, want %v", what, ch, i, got, actRef(x, act))
						}
					}
				}
			}
		}
	}
}

// TestSoftmax: float64 exp and sum, one rounding to float32 at the end
// (plus the float32 subtraction of the max): tol 1e-7 + 1e-6*|ref|.
func TestSoftmax(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, c := range []struct{ ch, hw int }{{1, 1}, {2, 1}, {10, 3}, {1000, 1}, {7, 5}} {
		in := randSlice(rng, c.ch*c.hw)
		for i := range in {
			in[i] *= 30 // logits of a real network's size
		}
		out := newGuarded(len(in))
		Softmax(c.ch, c.hw, in, out.s()[:len(in)])
		out.check(t, fmt.Sprintf("softmax %dx%d", c.ch, c.hw))
		for i := 0; i < c.hw; i++ {
			m := math.Inf(-1)
			for ch := 0; ch < c.ch; ch++ {
				m = math.Max(m, float64(in[ch*c.hw+i]))
			}
			var sum float64
			for ch := 0; ch < c.ch; ch++ {
				sum += math.Exp(float64(in[ch*c.hw+i]) - m)
			}
			for ch := 0; ch < c.ch; ch++ {
				want := math.Exp(float64(in[ch*c.hw+i])-m) / sum
				if got := out.s()[ch*c.hw+i]; !closeTo(got, want, want, 1e-7, 1e-6) {
					t.Fatalf("softmax %dx%d: out[%d][%d] = %v, want %v", c.ch, c.hw, ch, i, got, want)
				}
			}
		}
	}
	// Hand-checkable: equal logits give 1/C, huge logits do not overflow.
	in := []float32{1000, 1000, 1000, 1000, -1e30, 88, 89}
	out := make([]float32, len(in))
	Softmax(4, 1, in[:4], out[:4])
	Softmax(3, 1, in[4:], out[4:])
	want := []float32{0.25, 0.25, 0.25, 0.25, 0, float32(1 / (1 + math.E)), float32(math.E / (1 + math.E))}
	for i := range want {
		if math.Abs(float64(out[i]-want[i])) > 1e-7 {
			t.Fatalf("softmax = %v, want %v", out, want)
		}
	}
	// In place.
	Softmax(4, 1, in[:4], in[:4])
	if in[0] != 0.25 {
		t.Fatalf("in-place softmax = %v, want 0.25", in[:4])
	}
}

func TestInnerProduct(t *testing.T) {
	runners := []*Runner{nil, NewRunner(2), NewRunner(3)}
	defer func() {
		for _, r := range runners {
			r.Close()
		}
	}()
	rng := rand.New(rand.NewPCG(13, 14))
	for _, c := range []struct{ n, k int }{{1, 1}, {3, 5}, {10, 500}, {17, 2048}, {1000, 65}} {
		for ri, r := range runners {
			in, w := randSlice(rng, c.k), randSlice(rng, c.n*c.k)
			var bias []float32
			if ri != 1 {
				bias = randSlice(rng, c.n)
			}
			act := acts[ri%len(acts)]
			out := newGuarded(c.n)
			InnerProduct(r, in, w, bias, out.s()[:c.n], act)
			what := fmt.Sprintf("inner product %dx%d threads=%d", c.n, c.k, r.Threads())
			out.check(t, what)
			g := gemmArgs{m: c.n, n: 1, k: c.k, a: w, lda: c.k, b: in, ldb: 1, bias: bias, act: act}
			want, scale := gemmNaive(&g)
			for i := range want {
				if got := out.s()[i]; !closeTo(got, want[i], scale[i], gemmTol, gemmEps) {
					t.Fatalf("%s: out[%d] = %v, want %v", what, i, got, want[i])
				}
			}
		}
	}
}

// TestWidenF16 converts all 65536 binary16 values and compares the bits with
// github.com/x448/float16 (exact: no tolerance).
func TestWidenF16(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	check := func(name string, f func(dst []float32, src []uint16)) {
		dst := newGuarded(len(src))
		f(dst.s()[:len(src)], src)
		dst.check(t, name)
		for i, h := range src {
			want := float16.Frombits(h).Float32()
			if got := dst.s()[i]; math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("%s(%#04x) = %v (%#08x), want %v (%#08x)", name, h, got, math.Float32bits(got), want, math.Float32bits(want))
			}
		}
		// Odd lengths and offsets (vector tails, chunk edges) leave the neighbours alone.
		for _, n := range []int{0, 1, 3, 17, 63, 64, 65, 4095, 4097, 9000} {
			out := newGuarded(n)
			f(out.s()[:n], src[1000:1000+n])
			out.check(t, fmt.Sprintf("%s n=%d", name, n))
			for i, h := range src[1000 : 1000+n] {
				if got, want := out.s()[i], float16.Frombits(h).Float32(); got != want {
					t.Fatalf("%s n=%d: [%d] = %v, want %v", name, n, i, got, want)
				}
			}
		}
	}
	eachVariant(t, func(name string) { check("WidenF16/"+name, WidenF16) })
	check("generic", widenF16Generic)
}

// TestAddAct checks the build's fused sum-and-activation (Eltwise's
// two-input path) and its scalar twin: one float32 addition, then at most
// one multiplication, so the result equals the float32 computation exactly.
func TestAddAct(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	for name, f := range map[string]func(a, b, out []float32, act Act){Impl(): addAct, "generic": addActGeneric} {
		for _, n := range elementwiseSizes {
			for _, act := range acts {
				a, b := randSlice(rng, n), randSlice(rng, n)
				out := newGuarded(n)
				f(a, b, out.s()[:n], act)
				what := fmt.Sprintf("%s n=%d act=%v", name, n, act)
				out.check(t, what)
				for i := range a {
					if want := actScalar(a[i]+b[i], act); out.s()[i] != want {
						t.Fatalf("%s: [%d] = %v, want %v", what, i, out.s()[i], want)
					}
				}
			}
		}
	}
}
