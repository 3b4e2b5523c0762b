package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/x448/float16"
)

// ResNet-50's main GEMM shapes, m x k x n (out channels x in*kh*kw x spatial).
var benchGemmShapes = []gemmCase{
	{m: 64, k: 147, n: 12544}, // conv1 (7x7/2 via im2col)
	{m: 64, k: 64, n: 3136},   // res2 branch2a
	{m: 256, k: 64, n: 3136},  // res2 branch2c
	{m: 128, k: 1152, n: 784}, // res3 branch2b (3x3)
	{m: 256, k: 2304, n: 196}, // res4 branch2b (3x3)
	{m: 512, k: 4608, n: 49},  // res5 branch2b (3x3)
	{m: 2048, k: 512, n: 49},  // res5 branch2c
	{m: 1000, k: 2048, n: 1},  // fc1000
}

func benchGemm(b *testing.B, c gemmCase, f func(g *gemmArgs)) {
	rng := rand.New(rand.NewPCG(1, 1))
	g := gemmArgs{m: c.m, n: c.n, k: c.k, lda: c.k, ldb: c.n, ldc: c.n, act: Act{ReLU: true},
		a: randSlice(rng, c.m*c.k), b: randSlice(rng, c.k*c.n), c: make([]float32, c.m*c.n), bias: randSlice(rng, c.m)}
	f(&g)
	b.ReportAllocs()
	flops := 2 * float64(c.m*c.n*c.k)
	timed(b, flops, "GFLOP/s", true, func() { f(&g) })
}

// timed runs f once to warm up, then b.N times on one locked OS thread, and
// reports work/1e9 per second (unit, e.g. "GFLOP/s") by the wall clock and,
// with cpu and where the OS tells, by the thread's CPU time ("cpu-" + unit:
// the figure to compare on a loaded machine; meaningless when other
// goroutines do part of the work).
func timed(b *testing.B, workPerOp float64, unit string, cpu bool, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f()
	b.ResetTimer()
	cpu0, ok := threadCPUTime()
	for range b.N {
		f()
	}
	cpu1, _ := threadCPUTime()
	b.StopTimer()
	total := workPerOp * float64(b.N)
	b.ReportMetric(total/b.Elapsed().Seconds()/1e9, unit)
	if cpu && ok && cpu1 > cpu0 {
		b.ReportMetric(total/(cpu1-cpu0).Seconds()/1e9, "cpu-"+unit)
	}
}

// BenchmarkGemm runs each of the build's GEMMs (every assembly variant the
// CPU runs and simd, or scalar) beside the portable scalar one on one
// goroutine.
func BenchmarkGemm(b *testing.B) {
	ws := newTestWorkspace()
	for _, c := range benchGemmShapes {
		name := fmt.Sprintf("%dx%dx%d", c.m, c.k, c.n)
		eachVariant(b, func(impl string) {
			b.Run(name+"/"+impl, func(b *testing.B) {
				benchGemm(b, c, func(g *gemmArgs) { runGemm(g, 0, 1, &ws) })
			})
		})
		b.Run(name+"/generic", func(b *testing.B) {
			benchGemm(b, c, func(g *gemmArgs) {
				if g.n == 1 {
					gemvGeneric(g.m, g.k, g.a, g.lda, g.b, g.c, g.ldc, g.bias, g.act)
					return
				}
				gemmGeneric(g)
			})
		})
	}
}

// BenchmarkConv2D runs a few ResNet-50 layers through Conv2D (im2col or
// pointwise GEMM, bias and ReLU fused) with a nil Runner (one goroutine) and
// with a Runner of 2.
func BenchmarkConv2D(b *testing.B) {
	layers := []struct {
		name string
		p    ConvParams
	}{
		{"conv1", conv(3, 224, 224, 64, 7, 7, 2, 2, 3, 3, 1, 1, 1)},
		{"res2a_branch2b", conv(64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
		{"res2a_branch2c", conv(64, 56, 56, 256, 1, 1, 1, 1, 0, 0, 1, 1, 1)},
		{"res3a_branch1", conv(256, 56, 56, 512, 1, 1, 2, 2, 0, 0, 1, 1, 1)},
		{"res4a_branch2b", conv(256, 14, 14, 256, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
		{"res5a_branch2b", conv(512, 7, 7, 512, 3, 3, 1, 1, 1, 1, 1, 1, 1)},
	}
	for _, l := range layers {
		p := l.p
		rng := rand.New(rand.NewPCG(1, 2))
		in := randSlice(rng, p.InC*p.InH*p.InW)
		w := randSlice(rng, p.OutC*p.InC*p.KH*p.KW)
		bias := randSlice(rng, p.OutC)
		out := make([]float32, p.OutC*p.OutH*p.OutW)
		scratch := make([]float32, ConvScratchSize(p))
		flops := 2 * float64(p.OutC*p.OutH*p.OutW*p.InC*p.KH*p.KW)
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/%s/threads=%d", l.name, Impl(), threads), func(b *testing.B) {
				var r *Runner
				if threads > 1 {
					r = NewRunner(threads)
					defer r.Close()
				}
				b.ReportAllocs()
				timed(b, flops, "GFLOP/s", threads == 1, func() { Conv2D(r, p, in, w, bias, out, scratch, Act{ReLU: true}) })
			})
		}
	}
}

// BenchmarkWidenF16 pairs the build's WidenF16 with the scalar twin and
// reports the binary16 input converted per second (GB/s, and MB/s through
// b.SetBytes).
func BenchmarkWidenF16(b *testing.B) {
	src := make([]uint16, 1<<20)
	for i := range src {
		src[i] = uint16(i*7919) & 0x7bff // finite values of every exponent
	}
	dst := make([]float32, len(src))
	for _, im := range []struct {
		name string
		f    func(dst []float32, src []uint16)
	}{{Impl(), WidenF16}, {"generic", widenF16Generic}} {
		b.Run(im.name, func(b *testing.B) {
			b.SetBytes(2 * int64(len(src)))
			b.ReportAllocs()
			timed(b, 2*float64(len(src)), "GB/s", true, func() { im.f(dst, src) })
		})
	}
}

// resnet50Convs lists the convolutions of Caffe's ResNet-50
// (ResNet-50-deploy.prototxt): conv1, then per bottleneck block branch2a
// (1x1, carrying the stride in res3a/res4a/res5a), branch2b (3x3), branch2c
// (1x1) and, in each stage's first block, the branch1 projection.
func resnet50Convs() []ConvParams {
	convs := []ConvParams{conv(3, 224, 224, 64, 7, 7, 2, 2, 3, 3, 1, 1, 1)}
	in, size := 64, 56 // after pool1
	for s, blocks := range []int{3, 4, 6, 3} {
		mid := 64 << s
		out := 4 * mid
		for blk := 0; blk < blocks; blk++ {
			stride := 1
			if blk == 0 && s > 0 {
				stride = 2
			}
			if blk == 0 {
				convs = append(convs, conv(in, size, size, out, 1, 1, stride, stride, 0, 0, 1, 1, 1))
			}
			a := conv(in, size, size, mid, 1, 1, stride, stride, 0, 0, 1, 1, 1)
			b := conv(mid, a.OutH, a.OutW, mid, 3, 3, 1, 1, 1, 1, 1, 1, 1)
			c := conv(mid, b.OutH, b.OutW, out, 1, 1, 1, 1, 0, 0, 1, 1, 1)
			convs = append(convs, a, b, c)
			in, size = out, c.OutH
		}
	}
	return convs
}

// BenchmarkResNet50Convs runs every convolution of ResNet-50 and its
// inner product once per op (about 98% of the network's 7.7 GFLOP; pooling,
// eltwise and softmax are left out): the kernels' share of one image's
// latency. Each op has its own filters, as in the network (102 MB of
// float32, 51 MB of float16: they stream from memory once per image).
// Weight modes: f32 (Conv2D), f16 (Conv2DF16, widening as the kernels
// stage the filters) and f16-widen (WidenF16 of each op's filters into a
// buffer, then Conv2D: what an executor does without Conv2DF16); the
// kernel variants after the first (see eachVariant) run f32 only.
func BenchmarkResNet50Convs(b *testing.B) {
	convs := resnet50Convs()
	rng := rand.New(rand.NewPCG(1, 2))
	var flops float64
	maxAct, maxW, maxScratch := 0, 0, 0
	for _, p := range convs {
		flops += 2 * float64(p.OutC*p.OutH*p.OutW*p.InC*p.KH*p.KW)
		maxAct = max(maxAct, p.InC*p.InH*p.InW, p.OutC*p.OutH*p.OutW)
		maxW = max(maxW, p.OutC*p.InC*p.KH*p.KW)
		maxScratch = max(maxScratch, ConvScratchSizeF16(p))
	}
	flops += 2 * 1000 * 2048
	in, out := randSlice(rng, maxAct), make([]float32, maxAct)
	bias := randSlice(rng, 2048)
	ws, ws16 := make([][]float32, len(convs)+1), make([][]uint16, len(convs)+1)
	for i := range ws {
		n := 1000 * 2048 // the inner product's
		if i < len(convs) {
			p := convs[i]
			n = p.OutC * p.InC * p.KH * p.KW
		}
		ws[i] = randSlice(rng, n)
		ws16[i] = make([]uint16, n)
		for j, v := range ws[i] {
			ws16[i][j] = float16.Fromfloat32(v).Bits()
		}
	}
	fc := ws[len(convs)]
	wide := make([]float32, maxW)
	scratch := make([]float32, maxScratch)
	first := true
	eachVariant(b, func(impl string) {
		modes := []string{"f32", "f16", "f16-widen"}
		if !first {
			modes = modes[:1] // the other variants with float32 filters only
		}
		first = false
		for _, mode := range modes {
			for _, threads := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%s/threads=%d", impl, mode, threads), func(b *testing.B) {
					var r *Runner
					if threads > 1 {
						r = NewRunner(threads)
						defer r.Close()
					}
					b.ReportAllocs()
					timed(b, flops, "GFLOP/s", threads == 1, func() {
						for i, p := range convs {
							switch mode {
							case "f32":
								Conv2D(r, p, in, ws[i], bias[:p.OutC], out, scratch, Act{ReLU: true})
							case "f16":
								Conv2DF16(r, p, in, ws16[i], bias[:p.OutC], out, scratch, Act{ReLU: true})
							default:
								WidenF16(wide[:len(ws16[i])], ws16[i])
								Conv2D(r, p, in, wide, bias[:p.OutC], out, scratch, Act{ReLU: true})
							}
						}
						InnerProduct(r, in[:2048], fc, bias[:1000], out[:1000], Act{})
					})
					b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/image")
				})
			}
		}
	})
}

// BenchmarkResNet50Layers runs each distinct convolution of ResNet-50 (and
// its inner product) alone with 1 and 2 threads: the per-layer speed and
// thread scaling behind BenchmarkResNet50Convs. Names give the layer's
// shape and, after x, how many times ResNet-50 runs it.
func BenchmarkResNet50Layers(b *testing.B) {
	type layer struct {
		p ConvParams
		n int
	}
	var layers []layer
	for _, p := range resnet50Convs() {
		found := false
		for i := range layers {
			if layers[i].p == p {
				layers[i].n++
				found = true
			}
		}
		if !found {
			layers = append(layers, layer{p, 1})
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, l := range layers {
		p := l.p
		in := randSlice(rng, p.InC*p.InH*p.InW)
		w := randSlice(rng, p.OutC*p.InC*p.KH*p.KW)
		bias := randSlice(rng, p.OutC)
		out := make([]float32, p.OutC*p.OutH*p.OutW)
		scratch := make([]float32, ConvScratchSize(p))
		flops := 2 * float64(p.OutC*p.OutH*p.OutW*p.InC*p.KH*p.KW)
		name := fmt.Sprintf("%dx%dx%d-%dk%ds%dx%d", p.InC, p.InH, p.InW, p.OutC, p.KH, p.SH, l.n)
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", name, threads), func(b *testing.B) {
				var r *Runner
				if threads > 1 {
					r = NewRunner(threads)
					defer r.Close()
				}
				b.ReportAllocs()
				timed(b, flops, "GFLOP/s", threads == 1, func() { Conv2D(r, p, in, w, bias, out, scratch, Act{ReLU: true}) })
			})
		}
	}
}

// BenchmarkConv2DAdd compares ResNet-50's shortcut additions (branch2c,
// the 1x1 convolution before each block's sum) fused into the convolution
// with the two steps, Conv2D then Eltwise, one goroutine.
func BenchmarkConv2DAdd(b *testing.B) {
	for _, l := range []struct {
		name string
		p    ConvParams
	}{
		{"res2_branch2c", conv(64, 56, 56, 256, 1, 1, 1, 1, 0, 0, 1, 1, 1)},
		{"res3_branch2c", conv(128, 28, 28, 512, 1, 1, 1, 1, 0, 0, 1, 1, 1)},
		{"res4_branch2c", conv(256, 14, 14, 1024, 1, 1, 1, 1, 0, 0, 1, 1, 1)},
		{"res5_branch2c", conv(512, 7, 7, 2048, 1, 1, 1, 1, 0, 0, 1, 1, 1)},
	} {
		p := l.p
		rng := rand.New(rand.NewPCG(1, 2))
		n := p.OutC * p.OutH * p.OutW
		in, w, bias := randSlice(rng, p.InC*p.InH*p.InW), randSlice(rng, p.OutC*p.InC), randSlice(rng, p.OutC)
		res, out := randSlice(rng, n), make([]float32, n)
		scratch := make([]float32, ConvScratchSize(p))
		flops := 2 * float64(n*p.InC)
		b.Run(l.name+"/"+Impl()+"/fused", func(b *testing.B) {
			b.ReportAllocs()
			timed(b, flops, "GFLOP/s", true, func() { Conv2DAdd(nil, p, in, w, bias, res, out, scratch, Act{ReLU: true}) })
		})
		b.Run(l.name+"/"+Impl()+"/two-steps", func(b *testing.B) {
			b.ReportAllocs()
			timed(b, flops, "GFLOP/s", true, func() {
				Conv2D(nil, p, in, w, bias, out, scratch, Act{})
				Eltwise(EltSum, nil, [][]float32{out, res}, out, Act{ReLU: true})
			})
		})
	}
}
