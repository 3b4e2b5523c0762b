//go:build goexperiment.simd && amd64 && !noasm

package kernels

// winoPlan picks the Winograd tile size for p, or 0 for a direct
// convolution: Winograd needs the AVX-512 variant (its transforms gather
// and scatter 16 channels at once).
func winoPlan(p *ConvParams, act Act) int {
	if active != variantAVX512 || !winoEligible(p, act) {
		return 0
	}
	if winoForce >= 0 {
		return winoForce
	}
	// The filters are transformed on every call (U is 4x the filters for
	// F(4x4), 1.8x for F(2x2)), so the tile count decides: measured on
	// ResNet-50's 3x3 layers (one thread, same run, CPU time), F(4x4)
	// pays off from 28x28 outputs (2.3x at 56x56, 1.9x at 28x28), F(2x2)
	// at 14x14 (1.3x; F(4x4) there is 0.9x), and at 7x7 the direct
	// convolution wins (F(2x2) 0.6x). See doc.go.
	switch n := p.OutH * p.OutW; {
	case n >= 28*28:
		return 4
	case n >= 14*14:
		return 2
	}
	return 0
}

// winoForce, when not -1, overrides the choice of winoPlan for eligible
// convolutions (tests and benchmarks: 0 direct, 2 or 4 the tile size).
var winoForce = -1

// winoPhase runs worker w's share of phase t.phase (see winoShape).
func winoPhase(t *winoTask, w, nw int, ws *workspace) {
	s, p := &t.s, &t.p
	sc := t.scratch
	if t.phase == 0 {
		// This worker's blocks of 16 input channels: zero-padded into
		// channel blocks, then (unless the next phase splits by tiles)
		// every tile of them transformed into V.
		lo, hi := share(p.InC/16, w, nw)
		if lo == hi {
			return
		}
		plane := p.InH * p.InW
		for cg := lo; cg < hi; cg++ {
			pad := sc[s.padOff+cg*s.hp*s.wp*16 : s.padOff+(cg+1)*s.hp*s.wp*16]
			for y := 0; y < s.hp; y++ {
				row := pad[y*s.wp*16 : (y+1)*s.wp*16]
				iy := y - p.PH
				n := min(p.InW, s.wp-p.PW)
				if iy < 0 || iy >= p.InH || n <= 0 {
					clear(row)
					continue
				}
				clear(row[:p.PW*16])
				clear(row[(p.PW+n)*16:])
				src := t.in[cg*16*plane+iy*p.InW : (cg*16+15)*plane+iy*p.InW+n]
				for x0 := 0; x0 < n; x0 += 16 {
					transpose16AVX512(&row[(p.PW+x0)*16], 16, &src[x0], plane, 16, min(16, n-x0))
				}
			}
		}
		if !t.tiles {
			winoInput(t, lo, hi, 0, s.t)
		}
		return
	}
	if t.tiles {
		// Split by tiles (the output blocks take the padded input's place,
		// so every tile's input is transformed before any output is
		// written): phase 1 transforms this worker's share of the tiles
		// (whole micro-kernel row groups), phase 2 makes U for every output
		// channel, a chunk at a time, and computes the GEMMs and output
		// transform of the same tiles, so that each worker reads and writes
		// only its own rows of V and M; phase 3 transposes a share of the
		// completed output blocks into place.
		if t.phase == 3 {
			lo, hi := share(p.OutC/16, w, nw)
			winoTranspose(t, lo, hi)
			return
		}
		units := (s.t + asmMR - 1) / asmMR
		lo, hi := share(units, w, nw)
		lo, hi = lo*asmMR, min(hi*asmMR, s.t)
		if lo >= hi {
			return
		}
		if t.phase == 1 {
			winoInput(t, 0, p.InC/16, lo, hi)
			return
		}
		cw := winoChunk(p, s.a, 1, len(ws.u))
		for g0 := 0; g0 < p.OutC/16; g0 += cw {
			u, uStride := winoFilters(t, ws, g0, cw)
			winoGEMMs(t, u, uStride, g0, cw, lo, hi)
			winoOutput(t, g0, cw, lo, hi)
		}
		return
	}
	// A chunk of cw groups of 16 output channels per unit: their filters
	// transformed into U, every position's GEMM for these channels, the
	// output transform of their tiles (bias, ReLU) into the
	// channel-blocked output, and its transpose into place.
	cw := winoChunk(p, s.a, nw, len(ws.u))
	lo, hi := share(p.OutC/16/cw, w, nw)
	for chunk := lo; chunk < hi; chunk++ {
		g0 := chunk * cw
		u, uStride := winoFilters(t, ws, g0, cw)
		winoGEMMs(t, u, uStride, g0, cw, 0, s.t)
		winoOutput(t, g0, cw, 0, s.t)
		winoTranspose(t, g0, g0+cw)
	}
}

// winoInput transforms tiles t0..t1-1 of the padded input's channel
// blocks c0..c1-1 into V.
func winoInput(t *winoTask, c0, c1, t0, t1 int) {
	s, p := &t.s, &t.p
	sc := t.scratch
	q := s.a * s.a
	pads := sc[s.padOff+c0*s.hp*s.wp*16 : s.padOff+c1*s.hp*s.wp*16]
	for tile := t0; tile < t1; tile++ {
		v := sc[s.vOff+tile*p.InC+c0*16:]
		_ = v[(q-1)*s.vStride+(c1-c0)*16-1]
		ty, tx := tile/s.tw, tile%s.tw
		src := pads[(ty*s.m*s.wp+tx*s.m)*16:]
		_ = src[(c1-c0-1)*s.hp*s.wp*16+((s.a-1)*s.wp+s.a)*16-1]
		s.input(&v[0], s.vStride, &src[0], s.wp, c1-c0, s.hp*s.wp*16)
	}
}

// winoFilters transforms the filters of output channel groups g0..g0+cw-1
// into U in ws.u: transposed into channel blocks (tap-major, 16 channels
// per vector) in ws.b (widened there first when they are float16), then
// transformed, cw*16 channels per row, positions uStride apart.
func winoFilters(t *winoTask, ws *workspace, g0, cw int) (u []float32, uStride int) {
	s, p := &t.s, &t.p
	q := s.a * s.a
	ldu := cw * 16
	uStride = p.InC*ldu + 16 // not a power of two: see winoU
	u = ws.u[:q*uStride]
	e := p.InC * 9
	wt := ws.b[:e*16]
	for g := g0; g < g0+cw; g++ {
		var f []float32
		if t.w16 != nil {
			f = ws.b[e*16 : 2*e*16]
			widenF16(f, t.w16[g*16*e:(g+1)*16*e])
		} else {
			f = t.w[g*16*e : (g+1)*16*e]
		}
		for e0 := 0; e0 < e; e0 += 16 {
			transpose16AVX512(&wt[e0*16], 16, &f[e0], e, 16, min(16, e-e0))
		}
		ug := u[(g-g0)*16:]
		_ = ug[(q-1)*uStride+(p.InC-1)*ldu+15]
		s.weights(&ug[0], uStride, ldu, &wt[0], p.InC)
	}
	return u, uStride
}

// winoGEMMs computes, for every position, M's rows t0..t1-1 (tiles) and
// the columns of output channel groups g0..g0+cw-1: V's rows times U, in
// groups of up to asmMR rows.
func winoGEMMs(t *winoTask, u []float32, uStride, g0, cw, t0, t1 int) {
	s, p := &t.s, &t.p
	sc := t.scratch
	ldu, oc0 := cw*16, g0*16
	for qi := 0; qi < s.a*s.a; qi++ {
		v := sc[s.vOff+qi*s.vStride : s.vOff+(qi+1)*s.vStride]
		b := u[qi*uStride : qi*uStride+p.InC*ldu]
		c := sc[s.mOff+qi*s.mStride : s.mOff+(qi+1)*s.mStride]
		for r0 := t0; r0 < t1; r0 += asmMR {
			rows := min(asmMR, t1-r0)
			cr := c[r0*p.OutC+oc0 : (r0+rows-1)*p.OutC+oc0+ldu]
			variantAVX512.kernels[rows-1][cw-1](p.InC, &v[r0*p.InC], p.InC, &b[0], &cr[0], p.OutC, nil, nil, 0, 0, 16)
		}
	}
}

// winoOutput transforms tiles t0..t1-1 of M's output channel groups
// g0..g0+cw-1 (bias, ReLU) into the channel-blocked output.
func winoOutput(t *winoTask, g0, cw, t0, t1 int) {
	s, p := &t.s, &t.p
	sc := t.scratch
	q := s.a * s.a
	flags := 0
	if t.bias != nil {
		flags |= flagBias
	}
	if t.act.ReLU {
		flags |= flagReLU
	}
	bias := t.bias
	if bias == nil {
		bias = sc[:p.OutC] // never read
	}
	_ = bias[p.OutC-1]
	plane := p.OutH * p.OutW
	oc0, ldu := g0*16, cw*16
	yb := sc[s.yOff+g0*plane*16 : s.yOff+(g0+cw)*plane*16]
	for tile := t0; tile < t1; tile++ {
		ty, tx := tile/s.tw, tile%s.tw
		rows, cols := min(s.m, p.OutH-ty*s.m), min(s.m, p.OutW-tx*s.m)
		y := yb[(ty*s.m*p.OutW+tx*s.m)*16:]
		_ = y[(cw-1)*plane*16+((rows-1)*p.OutW+cols)*16-1]
		m := sc[s.mOff+tile*p.OutC+oc0:]
		_ = m[(q-1)*s.mStride+ldu-1]
		s.output(&y[0], p.OutW, plane*16, &m[0], s.mStride, &bias[oc0], flags, rows, cols, cw)
	}
}

// winoTranspose moves output channel groups g0..g1-1 from their blocks
// into place.
func winoTranspose(t *winoTask, g0, g1 int) {
	s, p := &t.s, &t.p
	plane := p.OutH * p.OutW
	yb := t.scratch[s.yOff:]
	for g := g0; g < g1; g++ {
		for y := 0; y < p.OutH; y++ {
			src := yb[(g*plane+y*p.OutW)*16 : (g*plane+(y+1)*p.OutW)*16]
			dst := t.out[g*16*plane+y*p.OutW : (g*16+15)*plane+(y+1)*p.OutW]
			for x0 := 0; x0 < p.OutW; x0 += 16 {
				transpose16AVX512(&dst[x0], plane, &src[x0*16], 16, min(16, p.OutW-x0), 16)
			}
		}
	}
}

func (s *winoShape) weights(u *float32, uStride, ldu int, w *float32, inC int) {
	if s.m == 4 {
		winoWeightsF4AVX512(u, uStride, ldu, w, inC)
	} else {
		winoWeightsF2AVX512(u, uStride, ldu, w, inC)
	}
}

func (s *winoShape) input(v *float32, vStride int, src *float32, wp, groups, groupStride int) {
	if s.m == 4 {
		winoInputF4AVX512(v, vStride, src, wp, groups, groupStride)
	} else {
		winoInputF2AVX512(v, vStride, src, wp, groups, groupStride)
	}
}

func (s *winoShape) output(out *float32, ow, groupStride int, m *float32, mStride int, bias *float32, flags, rows, cols, groups int) {
	if s.m == 4 {
		winoOutputF4AVX512(out, ow, groupStride, m, mStride, bias, flags, rows, cols, groups)
	} else {
		winoOutputF2AVX512(out, ow, groupStride, m, mStride, bias, flags, rows, cols, groups)
	}
}
