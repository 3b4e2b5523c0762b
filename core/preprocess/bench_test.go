package preprocess

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"sync"
	"testing"
	"time"

	"golang.org/x/image/draw"
)

// photoJPEG returns a w x h JPEG (quality 90) of smooth gradients with seeded
// noise: about the entropy and decoding cost of a real photo.
func photoJPEG(b *testing.B, w, h int) []byte {
	key := [2]int{w, h}
	photoCache.Lock()
	defer photoCache.Unlock()
	if d, ok := photoCache.m[key]; ok {
		return d
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	g := lcg(42)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			n := int(g.next()%32) - 16
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			v := 127 + 100*math.Sin(9*fx+5*fy)
			img.SetRGBA(x, y, color.RGBA{clamp8(v + float64(n)), clamp8(255*fx + float64(n)), clamp8(255*fy - float64(n)), 255})
		}
	}
	d := encodeJPEG(b, img, 90)
	photoCache.m[key] = d
	return d
}

var photoCache = struct {
	sync.Mutex
	m map[[2]int][]byte
}{m: map[[2]int][]byte{}}

func clamp8(v float64) uint8 { return uint8(min(max(v, 0), 255)) }

func newDst(s Spec, n int) [][]float32 {
	d := make([][]float32, n)
	for i := range d {
		d[i] = make([]float32, s.Channels*s.Height*s.Width)
	}
	return d
}

// BenchmarkDecode12MP: image/jpeg alone on a 4000x3000 4:2:0 JPEG.
func BenchmarkDecode12MP(b *testing.B) {
	data := photoJPEG(b, 4000, 3000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		if _, err := Decode(data, 0); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkCrops12MP: preprocessing of the decoded 12 MP image (box
// pre-reduction by 5, CatmullRom to 341x256, crops), 1 and 10 crops.
func BenchmarkCrops12MP(b *testing.B) {
	img, err := Decode(photoJPEG(b, 4000, 3000), 0)
	if err != nil {
		b.Fatal(err)
	}
	s := resnetSpec()
	s.MeanValues = []float32{104, 117, 123}
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("crops=%d", n), func(b *testing.B) {
			dst := newDst(s, n)
			bufs := Buffers{Retain: true} // the steady state: scratch kept from the previous call
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				if err := bufs.Crops(img, s, n, dst); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkDecodeCrops12MP: the whole path a classifier runs per image,
// with a Buffers that keeps its scratch between images (retain=true) and
// with the zero Buffers, which allocates it per image.
func BenchmarkDecodeCrops12MP(b *testing.B) {
	data := photoJPEG(b, 4000, 3000)
	s := resnetSpec()
	s.MeanValues = []float32{104, 117, 123}
	for _, c := range []struct {
		n      int
		retain bool
	}{{1, true}, {1, false}, {10, true}} {
		n := c.n
		b.Run(fmt.Sprintf("crops=%d/retain=%v", n, c.retain), func(b *testing.B) {
			dst := newDst(s, n)
			bufs := Buffers{Retain: c.retain}
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				img, err := Decode(data, 0)
				if err != nil {
					b.Fatal(err)
				}
				if err := bufs.Crops(img, s, n, dst); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
	}
}

// reportCPU adds the process CPU time per iteration since start (wall time
// is inflated when other processes share the cores).
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// BenchmarkDirectCatmullRom12MP is the naive twin of the resize step:
// x/image/draw's CatmullRom straight from the decoded 12 MP YCbCr to 341x256,
// without the box pre-reduction (its temporary is 341*3000*32 bytes = 33 MB).
func BenchmarkDirectCatmullRom12MP(b *testing.B) {
	img, err := Decode(photoJPEG(b, 4000, 3000), 0)
	if err != nil {
		b.Fatal(err)
	}
	dst := image.NewRGBA64(image.Rect(0, 0, 341, 256))
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		draw.CatmullRom.Scale(dst, dst.Bounds(), img, img.Bounds(), draw.Src, nil)
	}
	reportCPU(b, cpu)
}

// BenchmarkCrops64MP: preprocessing of a decoded 9000x7000 (63 MP) 4:2:0
// YCbCr image of seeded noise, the largest size DefaultMaxPixels admits in
// that shape (no JPEG step: encoding it would dominate the benchmark's setup).
func BenchmarkCrops64MP(b *testing.B) {
	img := image.NewYCbCr(image.Rect(0, 0, 9000, 7000), image.YCbCrSubsampleRatio420)
	g := lcg(64)
	for _, p := range [][]byte{img.Y, img.Cb, img.Cr} {
		for i := range p {
			p[i] = byte(g.next())
		}
	}
	s := resnetSpec()
	dst := newDst(s, 10)
	bufs := Buffers{Retain: true}
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		if err := bufs.Crops(img, s, 10, dst); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}
