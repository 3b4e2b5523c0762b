package main

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Result is one benchmark line of `go test -bench` output.
type Result struct {
	Name    string             // full name without "Benchmark" and the -GOMAXPROCS suffix, e.g. "Gemm/64x64x3136/simd"
	N       int                // iterations
	Metrics map[string]float64 // unit -> value: "ns/op", "B/op", "allocs/op", "GFLOP/s", custom units
	Units   []string           // the units in the order printed
}

// Parse reads `go test -bench` output and returns its benchmark lines.
// procs is the -cpu value the benchmarks ran with: go test appends "-procs"
// to every name when it is above 1, and only that suffix is removed (a
// sub-benchmark may itself end in "-2").
func Parse(r io.Reader, procs int) []Result {
	var out []Result
	suffix := ""
	if procs > 1 {
		suffix = "-" + strconv.Itoa(procs)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// Name, iterations, then value/unit pairs.
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		name = strings.TrimSuffix(name, suffix)
		res := Result{Name: name, N: n, Metrics: map[string]float64{}}
		ok := true
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				ok = false
				break
			}
			res.Metrics[f[i+1]] = v
			res.Units = append(res.Units, f[i+1])
		}
		if ok {
			out = append(out, res)
		}
	}
	return out
}

// Top returns the top-level benchmark name ("Gemm" for "Gemm/64x64x3136/simd").
func (r Result) Top() string {
	top, _, _ := strings.Cut(r.Name, "/")
	return top
}

// Sub returns the name below the top level ("64x64x3136/simd").
func (r Result) Sub() string {
	_, sub, _ := strings.Cut(r.Name, "/")
	return sub
}
