//go:build !js

package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/x448/float16"
)

// tensorCases are valid messages of every kind: activations in both
// dtypes, with and without a request for maps, and probabilities with maps.
func tensorCases() []struct {
	h      tensorHeader
	values []float32
	maps   [][]float32
} {
	digest := sha256.Sum256([]byte("manifest"))
	seq := func(n int, scale float32) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = scale * float32(i%97-48) / 7
		}
		return v
	}
	return []struct {
		h      tensorHeader
		values []float32
		maps   [][]float32
	}{
		{tensorHeader{Kind: kindActivations, DType: dtypeF32, Stage: 1, Digest: digest, Model: "resnet152", N: 1, Shape: [3]int{4, 3, 5}}, seq(60, 1), nil},
		{tensorHeader{Kind: kindActivations, DType: dtypeF16, Stage: 2, Digest: digest, Model: "r-50.synthetic_2", N: 10, Shape: [3]int{2, 2, 2}, Maps: true, Classes: []int{3, 999}}, seq(80, 0.5), nil},
		{tensorHeader{Kind: kindActivations, DType: dtypeF32, Stage: 3, Digest: digest, Model: "m", N: 2, Shape: [3]int{1, 1, 1}, Maps: true}, seq(2, 3), nil},
		{tensorHeader{Kind: kindProbs, DType: dtypeF32, Stage: 2, Digest: digest, Model: "resnet101", N: 2, Shape: [3]int{10, 1, 1}}, seq(20, 0.01), nil},
		{tensorHeader{Kind: kindProbs, DType: dtypeF32, Stage: 2, Digest: digest, Model: "resnet101", N: 2, Shape: [3]int{10, 1, 1}, Maps: true, Classes: []int{7, 1}, GridH: 2, GridW: 3},
			seq(20, 0.01), [][]float32{seq(6, 1), seq(6, 2), seq(6, 3), seq(6, 4)}},
	}
}

func encodeTensor(t testing.TB, h tensorHeader, values []float32, maps [][]float32) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := writeTensor(&b, &h, values, maps); err != nil {
		t.Fatal(err)
	}
	if int64(b.Len()) != int64(h.headerBytes())+h.payloadBytes() {
		t.Fatalf("%d bytes written; header %d + payload %d", b.Len(), h.headerBytes(), h.payloadBytes())
	}
	return b.Bytes()
}

// decodeTensor reads a whole message, allocating at most limit values.
func decodeTensor(data []byte, limit int) (tensorHeader, []float32, []float32, error) {
	r := bytes.NewReader(data)
	h, err := readTensorHeader(r)
	if err != nil {
		return h, nil, nil, err
	}
	if h.valueCount()+h.mapValues() > limit {
		return h, nil, nil, errors.New("over the test's limit")
	}
	values, maps := make([]float32, h.valueCount()), make([]float32, h.mapValues())
	err = readTensorValues(r, &h, values, maps)
	return h, values, maps, err
}

func TestTensorRoundTrip(t *testing.T) {
	for i, c := range tensorCases() {
		data := encodeTensor(t, c.h, c.values, c.maps)
		h, values, maps, err := decodeTensor(data, 1<<20)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !reflect.DeepEqual(h, c.h) {
			t.Errorf("case %d: header %+v, want %+v", i, h, c.h)
		}
		for j, v := range c.values {
			want := v
			if c.h.DType == dtypeF16 {
				want = float16.Fromfloat32(v).Float32()
			}
			if math.Float32bits(values[j]) != math.Float32bits(want) {
				t.Fatalf("case %d value %d: %v, want %v", i, j, values[j], want)
			}
		}
		var flat []float32
		for _, m := range c.maps {
			flat = append(flat, m...)
		}
		if !reflect.DeepEqual(maps, flat) && len(flat)+len(maps) > 0 {
			t.Errorf("case %d: maps %v, want %v", i, maps, flat)
		}
	}
}

// TestTensorRefuses: every malformed message is a *TensorError that says
// what is wrong, before any value is allocated.
func TestTensorRefuses(t *testing.T) {
	c := tensorCases()[4]
	good := encodeTensor(t, c.h, c.values, c.maps)
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	l := len(c.h.Model)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"magic", edit(func(b []byte) []byte { b[0] = 'X'; return b }), "not a stage tensor"},
		{"version", edit(func(b []byte) []byte { b[4] = 2; return b }), "version 2"},
		{"kind", edit(func(b []byte) []byte { b[5] = 3; return b }), "kind 3"},
		{"dtype", edit(func(b []byte) []byte { b[6] = 9; return b }), "dtype 9"},
		{"name length 0", edit(func(b []byte) []byte { b[40] = 0; return b }), "model name of 0 bytes"},
		{"name length 200", edit(func(b []byte) []byte { b[40] = 200; return b }), "model name of 200 bytes"},
		{"name characters", edit(func(b []byte) []byte { b[41] = '/'; return b }), "only letters"},
		{"batch 0", edit(func(b []byte) []byte { b[41+l], b[42+l] = 0, 0; return b }), "batch of 0"},
		{"batch 17", edit(func(b []byte) []byte { b[41+l], b[42+l] = 17, 0; return b }), "batch of 17"},
		{"zero dimension", edit(func(b []byte) []byte { copy(b[43+l:], []byte{0, 0, 0, 0}); return b }), "each dimension"},
		{"too many values", edit(func(b []byte) []byte {
			b[41+l] = 16
			copy(b[43+l:], []byte{0xff, 0xff, 0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff, 0, 0})
			return b
		}), "at most"},
		{"flags", edit(func(b []byte) []byte { b[55+l] |= 4; return b }), "unknown flags"},
		{"too many classes", edit(func(b []byte) []byte { b[56+l], b[57+l] = 0xe9, 0x03; return b }), "1001 map classes"},
		{"class out of range", edit(func(b []byte) []byte { copy(b[58+l:], []byte{0, 0, 1, 0}); return b }), "map class 65536"},
		{"maps without classes", edit(func(b []byte) []byte {
			b[56+l] = 0
			return append(b[:58+l], b[66+l:]...)
		}), "no class"},
		{"grid 0", edit(func(b []byte) []byte { b[66+l], b[67+l] = 0, 0; return b }), "map grid"},
		{"truncated values", good[:len(good)-1], "truncated in the maps"},
		{"trailing byte", append(bytes.Clone(good), 0), "longer than its header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := decodeTensor(tc.data, 1<<20)
			var te *TensorError
			if !errors.As(err, &te) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v (%T), want a *TensorError mentioning %q", err, err, tc.want)
			}
		})
	}
	// Cut anywhere: always refused.
	for n := range len(good) {
		if _, _, _, err := decodeTensor(good[:n], 1<<20); err == nil {
			t.Fatalf("a message cut to %d of %d bytes was accepted", n, len(good))
		}
	}
}

// FuzzTensorMessage: no input makes the reader panic or allocate more than
// its header accounts for, and whatever it accepts encodes back to the same
// bytes (float32) or the same header (float16, whose NaNs may change).
func FuzzTensorMessage(f *testing.F) {
	for _, c := range tensorCases() {
		f.Add(encodeTensor(f, c.h, c.values, c.maps))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		h, values, maps, err := decodeTensor(data, len(data))
		if err != nil {
			return
		}
		var b bytes.Buffer
		var grids [][]float32
		if len(maps) > 0 {
			grids = [][]float32{maps}
		}
		if err := writeTensor(&b, &h, values, grids); err != nil {
			t.Fatalf("an accepted message does not encode again: %v", err)
		}
		if h.DType == dtypeF32 && !bytes.Equal(b.Bytes(), data) {
			t.Fatalf("re-encoded differently:\n%x\n%x", b.Bytes(), data)
		}
		h2, _, _, err := decodeTensor(b.Bytes(), len(data))
		if err != nil || !reflect.DeepEqual(h, h2) {
			t.Fatalf("re-encoded header reads as %+v, %v; want %+v", h2, err, h)
		}
	})
}
