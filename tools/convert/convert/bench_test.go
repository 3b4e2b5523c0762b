package convert

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkConvertResNet152 converts a generated ResNet-152 caffemodel (about
// 241 MB, written once per test binary): read, lower, fold, round to float16,
// write and hash the shards. MB/s is caffemodel bytes per wall-clock second
// (target: 150); MB/cpu-s is the same per second of CPU time used by the
// process (all threads), which depends much less on what else the machine
// runs. The peak resident size is measured by TestPeakRSS in tools/convert
// (RESIDUAL_RSS=1), in a child process. RESIDUAL_MODEL_CACHE=DIR keeps the
// generated caffemodel between runs.
//
//	go test -run '^$' -bench ConvertResNet152 -benchtime 3x ./tools/convert/convert
func BenchmarkConvertResNet152(b *testing.B) {
	proto := sharedFile(b, "ResNet-152-deploy.prototxt")
	model := generatedModel(b, "ResNet-152-deploy.prototxt", 1)
	fi, err := os.Stat(model)
	if err != nil {
		b.Fatal(err)
	}
	labels := sharedFile(b, "synset_words.txt")
	dir := b.TempDir()
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	cpu0, haveCPU := cpuTime()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		out := filepath.Join(dir, "out")
		if _, err := Convert(Options{Caffemodel: model, Prototxt: proto, Labels: labels, Synthetic: true, Out: out}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(out)
		b.StartTimer()
	}
	if cpu1, _ := cpuTime(); haveCPU && b.N > 0 {
		// Includes the output removal between iterations (small).
		perOp := (cpu1 - cpu0).Seconds() / float64(b.N)
		b.ReportMetric(perOp, "cpu-s/op")
		b.ReportMetric(float64(fi.Size())/1e6/perOp, "MB/cpu-s")
	}
}
