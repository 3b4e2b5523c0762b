package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const sampleOutput = `goos: linux
goarch: amd64
pkg: github.com/residual-go/residual/core/kernels
cpu: AMD EPYC
BenchmarkGemm/64x147x12544/simd-2         	      10	   4500000 ns/op	        52.30 GFLOP/s	       0 B/op	       0 allocs/op
BenchmarkGemm/64x147x12544/generic-2      	       1	 230000000 ns/op	         1.03 GFLOP/s	       0 B/op	       0 allocs/op
BenchmarkClassify/threads-2-2             	       3	 250000000 ns/op	  61.5 peak-MB
BenchmarkBroken/x-2  	 abc	 12 ns/op
PASS
ok  	github.com/residual-go/residual/core/kernels	3.1s
`

func TestParse(t *testing.T) {
	rs := Parse(strings.NewReader(sampleOutput), 2)
	if len(rs) != 3 {
		t.Fatalf("parsed %d results, want 3: %+v", len(rs), rs)
	}
	want := []struct {
		name, top, sub string
		n              int
		unit           string
		v              float64
	}{
		{"Gemm/64x147x12544/simd", "Gemm", "64x147x12544/simd", 10, "GFLOP/s", 52.3},
		{"Gemm/64x147x12544/generic", "Gemm", "64x147x12544/generic", 1, "ns/op", 230000000},
		// Only the -cpu suffix is removed: the sub-benchmark's own "-2" stays.
		{"Classify/threads-2", "Classify", "threads-2", 3, "peak-MB", 61.5},
	}
	for i, w := range want {
		r := rs[i]
		if r.Name != w.name || r.Top() != w.top || r.Sub() != w.sub || r.N != w.n || r.Metrics[w.unit] != w.v {
			t.Errorf("result %d = %+v (top %q sub %q), want %+v", i, r, r.Top(), r.Sub(), w)
		}
	}
	// With -cpu 1 go test adds no suffix.
	one := Parse(strings.NewReader("BenchmarkClassify/threads-2 1 5 ns/op\n"), 1)
	if len(one) != 1 || one[0].Name != "Classify/threads-2" {
		t.Errorf("procs 1: %+v", one)
	}
}

func TestGflopsOf(t *testing.T) {
	r := Result{Metrics: map[string]float64{"ns/op": 1000}}
	if got := gflopsOf(r, "10x20x5"); got != 2 {
		t.Errorf("computed GFLOP/s = %v, want 2", got)
	}
	r.Metrics["GFLOP/s"] = 7
	if got := gflopsOf(r, "10x20x5"); got != 7 {
		t.Errorf("reported GFLOP/s = %v, want 7", got)
	}
}

func TestTable(t *testing.T) {
	tb := &Table{Header: []string{"benchmark", "build", "value", "vs baseline", "notes"}}
	tb.Add("Section")
	tb.Add("Gemm 64x64x3136 simd", "native simd", "52.30 GFLOP/s", "x50.8", "")
	tb.Add("Classify", "wasm simd128", missing(tb, "Classify", nil))
	tb.Add("Convert", "native simd", missing(tb, "Convert", errors.New("exit status 1")))
	var b bytes.Buffer
	tb.Write(&b)
	out := b.String()
	for _, s := range []string{"Section\n", "52.30 GFLOP/s", "x50.8", "n/a (missing BenchmarkClassify)", "n/a (BenchmarkConvert failed, see notes)", "note: BenchmarkConvert: exit status 1"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "benchmark") || !strings.HasPrefix(lines[1], "---") {
		t.Errorf("header:\n%s", out)
	}
	// Columns line up: "native simd" starts at the same offset in every row.
	col := strings.Index(lines[0], "build")
	for _, l := range lines[3:5] {
		if strings.Index(l, "native simd")+strings.Index(l, "wasm simd128")+1 != col {
			t.Errorf("misaligned row %q (build column at %d)", l, col)
		}
	}
}

func TestFormatNum(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{{13628.4, "13628"}, {141.43, "141.4"}, {0.16134, "0.1613"}, {5.83e4, "58300"}, {2e-5, "2e-05"}} {
		if got := formatNum(c.v); got != c.want {
			t.Errorf("formatNum(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}
