package kernels

// Winograd minimal filtering F(m x m, 3 x 3) for 3x3, stride-1,
// undilated, ungrouped convolutions (Lavin and Gray, "Fast Algorithms for
// Convolutional Neural Networks", CVPR 2016). The output is cut into m x m
// tiles; tile t of input channel c, the (m+2) x (m+2) window d around it,
// becomes V = B^T d B, each filter g becomes U = G g G^T, and for each of
// the (m+2)^2 positions q the products of all channel pairs are one GEMM,
//
//	M[q] (tiles x OutC) = V[q] (tiles x InC) * U[q] (InC x OutC),
//
// from which each tile's output is A^T M A (plus bias, activation). That is
// (m+2)^2/m^2 multiplications per output and channel pair instead of 9:
// 2.25 for F(4x4) (4x fewer), 4 for F(2x2). The assembly build implements
// it (wino_amd64.go); the layout below is shared.

// winoShape is the geometry of one Winograd convolution and its scratch,
// after the calling goroutine's GEMM workspace: the padded input in channel
// blocks of 16 (pad[c/16][y][x][c%16]: the transforms load 16 channels of a
// pixel as one vector), later the output in channel blocks, before it is
// transposed into place; V (tiles x InC per position, the GEMM's A) and M
// (tiles x OutC per position, the GEMM's C). U (the transformed filters,
// packed as the GEMM's B) is made a chunk of output channels at a time in
// each worker's workspace (workspace.u), right before the GEMMs that read
// it, so that it stays in L2.
type winoShape struct {
	m, a   int // output and input tile sizes, a = m+2
	th, tw int // tiles down and across
	t      int // tiles in all
	hp, wp int // padded input covering every tile's window

	wsSize, padOff, vOff, vStride, mOff, mStride, yOff, size int
}

// winoEligible reports whether Winograd can run p: a 3x3, stride-1,
// undilated, ungrouped convolution whose channel counts fill whole vectors
// (InC) and chunks of 64 (OutC), with plain ReLU or no activation, and
// whose filters of 16 output channels fit the workspace (see winoChunk).
func winoEligible(p *ConvParams, act Act) bool {
	return p.KH == 3 && p.KW == 3 && p.SH == 1 && p.SW == 1 && p.DH == 1 && p.DW == 1 &&
		p.Group == 1 && p.InC%16 == 0 && p.OutC%64 == 0 && (!act.ReLU || act.Slope == 0) &&
		36*(p.InC*16+16) <= gemmLayout().u && 2*16*9*p.InC <= gemmLayout().b
}

func winoShapeFor(p *ConvParams, m int) winoShape {
	s := winoShape{m: m, a: m + 2}
	s.th, s.tw = (p.OutH+m-1)/m, (p.OutW+m-1)/m
	s.t = s.th * s.tw
	s.hp, s.wp = s.th*m+2, s.tw*m+2
	q := s.a * s.a
	s.vStride = s.t * p.InC
	s.mStride = s.t * p.OutC
	// The output blocks take the padded input's place: that is dead once
	// the input is transformed (the first phase).
	s.wsSize = workspaceSize()
	s.padOff = s.wsSize
	s.yOff = s.padOff
	s.vOff = s.padOff + max(p.InC*s.hp*s.wp, p.OutC*p.OutH*p.OutW)
	s.mOff = s.vOff + q*s.vStride
	s.size = s.mOff + q*s.mStride
	return s
}

// winoChunk is how many groups of 16 output channels (1, 2 or 4) one unit
// of the filter-and-GEMM phase takes with nw workers: as many as the
// workspace's U buffer holds, fewer when that leaves a worker idle.
func winoChunk(p *ConvParams, a, nw, ubuf int) int {
	groups := p.OutC / 16
	cw := 4
	for cw > 1 && (groups/cw < nw || a*a*(p.InC*16*cw+16) > ubuf) {
		cw /= 2
	}
	return cw
}

// winoScratch is the most scratch a Winograd convolution of p can take.
func winoScratch(p *ConvParams) int {
	if !hasAsm || !winoEligible(p, Act{}) {
		return 0
	}
	return max(winoShapeFor(p, 4).size, winoShapeFor(p, 2).size)
}

// winoTask is one phase of a Winograd convolution, run by every worker on
// its share (winoPhase).
type winoTask struct {
	phase                     int
	s                         winoShape
	p                         ConvParams
	in, w, bias, out, scratch []float32
	w16                       []uint16 // the filters as float16 instead of w
	act                       Act
	tiles                     bool // the GEMM phase split by tiles (see winograd)
}

func (t *winoTask) run(w, nw int, ws *workspace) { winoPhase(t, w, nw, ws) }

// The phases (barriers between them): the input padded and transformed, a
// worker's share of channel blocks at a time; then either per chunk of
// output channels the filter transform, the GEMMs and the output transform
// and transpose of those channels; or (t.tiles) the input only padded, then
// per worker a share of the tiles transformed, then for the same tiles
// every output channel's GEMMs and output transform, and last the output
// blocks transposed into place (see winoPhase).

// winoTiles, when not -1, overrides winoByTiles (tests and benchmarks: 0
// chunks of output channels, 1 tiles).
var winoTiles = -1

// winoByTiles reports whether nw workers split the GEMM phase of a
// Winograd convolution by tiles rather than by chunks of output channels.
func winoByTiles(p *ConvParams, s *winoShape, nw int) bool {
	if winoTiles >= 0 {
		return winoTiles == 1 && nw > 1
	}
	// Measured (BenchmarkWinograd, 2 workers, same runs): splitting by
	// chunks wins wherever each worker still gets chunks of 4 groups
	// (res3 F(4x4) 361 vs 420 us, res4 F(2x2) 504 vs 554 us); where the
	// chunks would have to shrink to give every worker one (res2: 64
	// output channels, chunks of 2 groups and the 6 x 2-vector
	// micro-kernel), the tiles win: 437 vs 550 us (one worker: 500 us).
	ubuf := gemmLayout().u
	return nw > 1 && winoChunk(p, s.a, nw, ubuf) < winoChunk(p, s.a, 1, ubuf)
}

// winograd runs a Winograd convolution on r's workers, phase by phase; the
// calling goroutine's workspace is the start of t.scratch.
func (r *Runner) winograd(t winoTask) {
	ws := newWorkspace(t.scratch[:t.s.wsSize])
	t.tiles = winoByTiles(&t.p, &t.s, r.Threads())
	phases := 2
	if t.tiles {
		phases = 4
	}
	for t.phase = 0; t.phase < phases; t.phase++ {
		if r == nil {
			winoPhase(&t, 0, 1, &ws)
			continue
		}
		r.winoT = t
		r.ws[0] = ws
		r.dispatch(&r.winoT)
	}
	if r != nil {
		r.winoT, r.ws[0] = winoTask{}, workspace{}
	}
}
