package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// sentinel is the guard value written around (and between the rows of)
// every output: a NaN with a recognizable payload, compared by bits.
const sentinelBits = 0x7fc0dead

var sentinel = math.Float32frombits(sentinelBits)

const guardLen = 67 // odd, longer than any vector

// guarded returns a slice of n float32s with guardLen sentinels on each
// side in the same backing array, the slice itself also filled with
// sentinels; checkGuards reports any guard that was overwritten.
type guarded struct {
	all []float32
}

func newGuarded(n int) guarded {
	g := guarded{all: make([]float32, guardLen+n+guardLen)}
	for i := range g.all {
		g.all[i] = sentinel
	}
	return g
}

// s is the usable part (full capacity up to the tail guard, so that a write
// past n through a re-slice would also be caught).
func (g guarded) s() []float32 { return g.all[guardLen : len(g.all)-guardLen] }

func (g guarded) check(t *testing.T, what string) {
	t.Helper()
	for i := 0; i < guardLen; i++ {
		if math.Float32bits(g.all[i]) != sentinelBits {
			t.Fatalf("%s: guard before the output overwritten at -%d: %v", what, guardLen-i, g.all[i])
		}
		if j := len(g.all) - guardLen + i; math.Float32bits(g.all[j]) != sentinelBits {
			t.Fatalf("%s: guard after the output overwritten at +%d: %v", what, i, g.all[j])
		}
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = rng.Float32()*2 - 1
	}
	return s
}

func actRef(x float64, a Act) float64 {
	if a.ReLU && !(x > 0) {
		return x * float64(a.Slope)
	}
	return x
}

// closeTo reports whether got is within tol + |scale|*eps of want, where
// scale is the sum of the absolute values of the terms that made want (the
// condition of the sum), see doc.go for the policy.
func closeTo(got float32, want, scale, tol, eps float64) bool {
	return math.Abs(float64(got)-want) <= tol+math.Abs(scale)*eps
}

var acts = []Act{{}, {ReLU: true}, {ReLU: true, Slope: 0.1}}

func (a Act) String() string {
	switch {
	case !a.ReLU:
		return "none"
	case a.Slope == 0:
		return "relu"
	}
	return fmt.Sprintf("leaky%g", a.Slope)
}
