package kernels

// Portable scalar GEMM and GEMV. They are the whole implementation in the
// scalar build and the baseline the simd build is tested and benchmarked
// against (both builds compile this file).

// gemmGeneric computes C = act(A*B + bias) (see gemmArgs) row by row: each
// row of C starts at its bias and accumulates a[i][p] * (row p of B), so the
// inner loop runs over contiguous memory. Four rows share each load of B.
func gemmGeneric(g *gemmArgs) {
	m, n, k := g.m, g.n, g.k
	i := 0
	for ; i+4 <= m; i += 4 {
		c0 := g.c[i*g.ldc : i*g.ldc+n]
		c1 := g.c[(i+1)*g.ldc : (i+1)*g.ldc+n]
		c2 := g.c[(i+2)*g.ldc : (i+2)*g.ldc+n]
		c3 := g.c[(i+3)*g.ldc : (i+3)*g.ldc+n]
		fillBias(c0, g.bias, i)
		fillBias(c1, g.bias, i+1)
		fillBias(c2, g.bias, i+2)
		fillBias(c3, g.bias, i+3)
		a0 := g.a[i*g.lda : i*g.lda+k]
		a1 := g.a[(i+1)*g.lda : (i+1)*g.lda+k]
		a2 := g.a[(i+2)*g.lda : (i+2)*g.lda+k]
		a3 := g.a[(i+3)*g.lda : (i+3)*g.lda+k]
		for p := 0; p < k; p++ {
			b := g.b[p*g.ldb : p*g.ldb+n]
			x0, x1, x2, x3 := a0[p], a1[p], a2[p], a3[p]
			c0, c1, c2, c3 := c0[:len(b)], c1[:len(b)], c2[:len(b)], c3[:len(b)]
			for j, v := range b {
				c0[j] += x0 * v
				c1[j] += x1 * v
				c2[j] += x2 * v
				c3[j] += x3 * v
			}
		}
		activateRows(g, i, i+4)
	}
	for ; i < m; i++ {
		c0 := g.c[i*g.ldc : i*g.ldc+n]
		fillBias(c0, g.bias, i)
		a0 := g.a[i*g.lda : i*g.lda+k]
		for p, x := range a0 {
			b := g.b[p*g.ldb : p*g.ldb+n]
			for j, v := range b {
				c0[j] += x * v
			}
		}
		activateRows(g, i, i+1)
	}
}

func fillBias(c, bias []float32, i int) {
	var v float32
	if bias != nil {
		v = bias[i]
	}
	for j := range c {
		c[j] = v
	}
}

func activateRows(g *gemmArgs, lo, hi int) {
	if !g.act.ReLU {
		return
	}
	for i := lo; i < hi; i++ {
		activateGeneric(g.c[i*g.ldc:i*g.ldc+g.n], g.c[i*g.ldc:i*g.ldc+g.n], g.act)
	}
}

// gemvGeneric computes y[i*ldy] = act(dot(row i of A, x) + bias[i]) for i < m.
func gemvGeneric(m, k int, a []float32, lda int, x, y []float32, ldy int, bias []float32, act Act) {
	x = x[:k]
	for i := 0; i < m; i++ {
		row := a[i*lda : i*lda+k]
		var s0, s1, s2, s3 float32
		p := 0
		for ; p+4 <= k; p += 4 {
			s0 += row[p] * x[p]
			s1 += row[p+1] * x[p+1]
			s2 += row[p+2] * x[p+2]
			s3 += row[p+3] * x[p+3]
		}
		for ; p < k; p++ {
			s0 += row[p] * x[p]
		}
		s := (s0 + s1) + (s2 + s3)
		if bias != nil {
			s += bias[i]
		}
		y[i*ldy] = actScalar(s, act)
	}
}

// addActGeneric computes out = act(a + b) elementwise; out may alias a or b.
func addActGeneric(a, b, out []float32, act Act) {
	b, out = b[:len(a)], out[:len(a)]
	for i, x := range a {
		out[i] = actScalar(x+b[i], act)
	}
}

// activateGeneric applies act elementwise; out may alias in.
func activateGeneric(in, out []float32, act Act) {
	out = out[:len(in)]
	if !act.ReLU {
		copy(out, in)
		return
	}
	for i, x := range in {
		if !(x > 0) {
			x *= act.Slope
		}
		out[i] = x
	}
}
