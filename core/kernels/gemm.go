package kernels

// gemmArgs describes C = act(A*B + bias): A is m x k with row stride lda,
// B is k x n with row stride ldb, C is m x n with row stride ldc, all
// row-major; bias holds m values (one per row of C, that is per output
// channel) or is nil. C is overwritten, never read before it is written.
type gemmArgs struct {
	m, n, k int
	a       []float32
	a16     []uint16 // A as float16 instead (assembly GEMM only), lda apart
	lda     int
	b       []float32
	ldb     int
	c       []float32
	ldc     int
	bias    []float32
	act     Act

	// res, when not nil, is added after the bias and before the activation
	// (m x n, row stride ldc, like c; the assembly GEMM only, see
	// takesResidual).
	res []float32

	// fromImage makes B the im2col matrix of the convolution conv (one
	// group's input channels in b; see im2colRange): column j of B is
	// output pixel col0+j, ldb is unused. Only the simd build's GEMM
	// supports it (see packsIm2col); it builds B one panel at a time.
	fromImage bool
	conv      ConvParams
	col0      int

	// img makes B the im2col matrix of conv as the assembly GEMM reads it
	// (see imageB): b holds the input or its prepared copy; column j of
	// B is output pixel col0+j.
	img imageB
}

type gemmTask struct{ g gemmArgs }

func (t *gemmTask) run(w, nw int, ws *workspace) { runGemm(&t.g, w, nw, ws) }

// gemm runs g on r's workers, the caller with ws; a nil r runs it all here.
func (r *Runner) gemm(g gemmArgs, ws *workspace) {
	if r == nil {
		runGemm(&g, 0, 1, ws)
		return
	}
	r.gemmT.g = g
	if ws != nil {
		r.ws[0] = *ws // stored, not pointed to, so that ws stays on the caller's stack
	}
	r.dispatch(&r.gemmT)
	r.gemmT.g, r.ws[0] = gemmArgs{}, workspace{} // drop references to the caller's slices
}

// runGemm computes worker w's share of g. Wide products are split over
// columns of C in whole micro-tile widths (each worker packs its own panels
// of B and reads all of A); narrow ones, like the 7x7 layers of ResNet's
// last stage, over rows. A single column (inner product, 1x1 spatial) is a
// matrix-vector product split over rows.
func runGemm(g *gemmArgs, w, nw int, ws *workspace) {
	if g.m == 0 || g.n == 0 {
		return
	}
	if g.n == 1 && g.ldb == 1 && !g.fromImage && !g.img.on && g.a16 == nil {
		lo, hi := share(g.m, w, nw)
		if lo < hi {
			gemv(hi-lo, g.k, g.a[lo*g.lda:], g.lda, g.b[:g.k], g.c[lo*g.ldc:], g.ldc, biasFrom(g.bias, lo), g.act)
		}
		return
	}
	if nw == 1 {
		gemm(ws, g)
		return
	}
	sub := *g
	nr, mr := gemmNR(), gemmMR()
	if units := (g.n + nr - 1) / nr; units >= 4*nw {
		lo, hi := share(units, w, nw)
		lo, hi = lo*nr, min(hi*nr, g.n)
		if lo >= hi {
			return
		}
		sub.n = hi - lo
		if g.fromImage || g.img.on {
			sub.col0 = g.col0 + lo
		} else {
			sub.b = g.b[lo:]
		}
		sub.c = g.c[lo:]
		if g.res != nil {
			sub.res = g.res[lo:]
		}
	} else {
		units := (g.m + mr - 1) / mr
		lo, hi := share(units, w, nw)
		lo, hi = lo*mr, min(hi*mr, g.m)
		if lo >= hi {
			return
		}
		sub.m = hi - lo
		if g.a16 != nil {
			sub.a16 = g.a16[lo*g.lda:]
		} else {
			sub.a = g.a[lo*g.lda:]
		}
		sub.c = g.c[lo*g.ldc:]
		if g.res != nil {
			sub.res = g.res[lo*g.ldc:]
		}
		sub.bias = biasFrom(g.bias, lo)
	}
	gemm(ws, &sub)
}

func biasFrom(bias []float32, lo int) []float32 {
	if bias == nil {
		return nil
	}
	return bias[lo:]
}

// actScalar applies a to one value (Caffe ReLU: x > 0 ? x : x*negative_slope).
func actScalar(x float32, a Act) float32 {
	if a.ReLU && !(x > 0) {
		return x * a.Slope
	}
	return x
}

// workspace holds one worker's GEMM buffers: b for a packed panel of B;
// for the simd GEMM, tile for one micro-tile of C before its epilogue and
// col for one panel of an im2col matrix before it is packed; for the
// assembly GEMM, a for the rows of A it widens from float16 and u for a
// chunk of Winograd's transformed filters. A worker runs one GEMM at a
// time, so col shares its memory with u, and tile with a. The scalar build
// needs none.
type workspace struct {
	b, tile, col, a, u []float32
}

// wsLayout is the size of each buffer of a workspace, in float32s.
type wsLayout struct{ b, tile, col, a, u int }

func (l wsLayout) max(o wsLayout) wsLayout {
	return wsLayout{max(l.b, o.b), max(l.tile, o.tile), max(l.col, o.col), max(l.a, o.a), max(l.u, o.u)}
}

func (l wsLayout) size() int { return l.b + max(l.tile, l.a) + max(l.col, l.u) }

// workspaceSize is the number of float32s of one worker's GEMM buffers: the
// largest any GEMM of this build (any variant chosen at run time) needs.
func workspaceSize() int { return gemmLayout().size() }

// newWorkspace cuts buf (at least workspaceSize() long) into the buffers.
func newWorkspace(buf []float32) workspace {
	l := gemmLayout()
	var ws workspace
	ws.b = buf[:l.b:l.b]
	shared := buf[l.b : l.b+max(l.tile, l.a)]
	ws.tile, ws.a = shared[:l.tile:l.tile], shared[:l.a:l.a]
	shared = buf[l.b+max(l.tile, l.a) : l.size()]
	ws.col, ws.u = shared[:l.col:l.col], shared[:l.u:l.u]
	return ws
}
