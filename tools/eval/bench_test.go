package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"golang.org/x/image/draw"

	"github.com/residual-go/residual/internal/testfiles"
)

// benchImages is the number of images one benchmark iteration evaluates.
const benchImages = 32

// BenchmarkEval runs the whole command (loading included, about 2% of the
// time) on 32 JPEG photos of ILSVRC2012's typical size (500x375 and
// 375x500) with ResNet-50, once per way of using the cores: one
// single-threaded model per core against one model using every core. It
// reports images per second, the CPU time per image, the share of time the
// Go scheduler had nothing to run (idle%), and from those the throughput on
// an otherwise idle machine (quiet-img/s; see goCPUClasses). The model is
// $RESIDUAL_BENCH_MODEL, else weights/resnet50-synthetic (`make synthetic`).
//
//	go test -run '^$' -bench Eval -benchtime 2x -count 5 ./tools/eval/
func BenchmarkEval(b *testing.B) {
	model := os.Getenv("RESIDUAL_BENCH_MODEL")
	if model == "" {
		model = filepath.Join(testfiles.Root(), "weights", "resnet50-synthetic")
	}
	if _, err := os.Stat(filepath.Join(model, "manifest.json")); err != nil {
		b.Skipf("no ResNet-50 at %s (make synthetic, or set RESIDUAL_BENCH_MODEL): %v", model, err)
	}
	images, list := benchPhotos(b)
	n := runtime.NumCPU()
	for _, c := range []struct{ workers, threads int }{{n, 1}, {1, n}} {
		b.Run(fmt.Sprintf("workers=%d/threads=%d", c.workers, c.threads), func(b *testing.B) {
			args := []string{"-model", model, "-images", images, "-labels", list, "-json",
				"-workers", fmt.Sprint(c.workers), "-threads", fmt.Sprint(c.threads)}
			idle0, total0 := goCPUClasses()
			cpu0 := processCPU()
			for b.Loop() {
				var out, errb bytes.Buffer
				if status := run(context.Background(), args, &out, &errb); status != 0 {
					b.Fatalf("status %d: %s", status, errb.String())
				}
				if !strings.Contains(errb.String(), fmt.Sprintf("%d images scored, 0 failed", benchImages)) {
					b.Fatalf("stderr %q", errb.String())
				}
			}
			cpu := processCPU() - cpu0
			idle1, total1 := goCPUClasses()
			imgs := float64(b.N * benchImages)
			idle := (idle1 - idle0) / (total1 - total0)
			b.ReportMetric(imgs/b.Elapsed().Seconds(), "img/s")
			b.ReportMetric(float64(cpu)/float64(time.Millisecond)/imgs, "cpu-ms/img")
			b.ReportMetric(100*idle, "idle%")
			if cpu > 0 {
				b.ReportMetric(imgs*float64(runtime.GOMAXPROCS(0))*(1-idle)/cpu.Seconds(), "quiet-img/s")
			}
		})
	}
}

// goCPUClasses returns the Go runtime's idle and total CPU-seconds
// (runtime/metrics; the total is GOMAXPROCS times the wall time). It runs a
// GC first: the runtime updates these counters at the end of each GC.
//
// The idle share (no goroutine to run on a P) is what separates the
// strategies, and unlike wall time it does not depend on how many other
// processes share the machine: a thread the OS has descheduled still counts
// as busy. quiet-img/s = images x GOMAXPROCS x (1 - idle share) / CPU time is
// then the throughput to expect on a machine with no other load.
func goCPUClasses() (idle, total float64) {
	runtime.GC()
	s := []metrics.Sample{{Name: "/cpu/classes/idle:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64(), s[1].Value.Float64()
}

// benchPhotos writes benchImages JPEGs (quality 90) cut from a photo of the
// repository at different offsets and scaled to 500x375 or 375x500, and
// their list.
func benchPhotos(b *testing.B) (images, list string) {
	f, err := os.Open(testfiles.Path(b, testfiles.Photos+"/yellow_rose.png"))
	if err != nil {
		b.Fatal(err)
	}
	src, _, err := image.Decode(f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	images = b.TempDir()
	var val strings.Builder
	for i := range benchImages {
		w, h := 500, 375
		if i%4 == 3 {
			w, h = 375, 500
		}
		r := src.Bounds()
		r.Min = r.Min.Add(image.Pt(i%7*8, i%5*6))
		r.Max = r.Max.Sub(image.Pt(i%3*10, i%2*10))
		dst := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.BiLinear.Scale(dst, dst.Bounds(), src, r, draw.Src, nil)
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 90}); err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("ILSVRC2012_val_%08d.JPEG", i+1)
		if err := os.WriteFile(filepath.Join(images, name), buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&val, "%s %d\n", name, i*37%1000)
	}
	list = filepath.Join(images, "val.txt")
	if err := os.WriteFile(list, []byte(val.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return images, list
}
