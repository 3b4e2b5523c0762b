package preprocess

import (
	"errors"
	"image"
	"image/color"
	"math"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/image/draw"
)

// resnetSpec is the ResNet input: 224x224 BGR, shorter side 256.
func resnetSpec() Spec {
	return Spec{Channels: 3, Height: 224, Width: 224, Resize: 256, ChannelOrder: "BGR", Scale: 1}
}

// TestAsIs: a 224x224 image is not resized: the output is exactly
// (pixel - mean) * scale, in BGR, with a mean image and with per-channel means.
func TestAsIs(t *testing.T) {
	img := randomNRGBA(224, 224, 7)
	g := lcg(8)
	mean := make([]float32, 3*224*224)
	for i := range mean {
		mean[i] = float32(g.next()%25600) / 100
	}
	for _, tc := range []struct {
		name string
		spec func(*Spec)
		mean func(c, i int) float32
	}{
		{"mean image", func(s *Spec) { s.Mean = mean }, func(c, i int) float32 { return mean[c*224*224+i] }},
		{"mean values", func(s *Spec) { s.MeanValues = []float32{104, 117, 123} }, func(c, i int) float32 { return []float32{104, 117, 123}[c] }},
		{"one mean value", func(s *Spec) { s.MeanValues = []float32{33} }, func(c, i int) float32 { return 33 }},
		{"no mean", func(s *Spec) {}, func(c, i int) float32 { return 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := resnetSpec()
			s.Scale = 0.5
			tc.spec(&s)
			out := runCrops(t, img, s, 1)[0]
			for y := 0; y < 224; y++ {
				for x := 0; x < 224; x++ {
					p := img.Pix[y*img.Stride+4*x:]
					i := y*224 + x
					for c, v := range []byte{p[2], p[1], p[0]} { // BGR
						want := (float32(v) - tc.mean(c, i)) * 0.5
						if got := out[c*224*224+i]; got != want {
							t.Fatalf("(%d,%d) channel %d = %v, want %v", x, y, c, got, want)
						}
					}
				}
			}
		})
	}
}

// TestResizeAndCenterCrop: a 300x500 image becomes 256x427 (500*256/300 =
// 426.67, rounded) and the crop is taken at ((256-224)/2, (427-224)/2) =
// (16, 101). The reference resizes the whole image with draw.CatmullRom
// directly and crops by hand.
func TestResizeAndCenterCrop(t *testing.T) {
	if w, h := ResizedSize(300, 500, 256); w != 256 || h != 427 {
		t.Fatalf("ResizedSize(300, 500) = %dx%d, want 256x427", w, h)
	}
	if w, h := ResizedSize(500, 300, 256); w != 427 || h != 256 {
		t.Fatalf("ResizedSize(500, 300) = %dx%d, want 427x256", w, h)
	}
	img := randomNRGBA(300, 500, 9)
	ref := image.NewRGBA64(image.Rect(0, 0, 256, 427))
	draw.CatmullRom.Scale(ref, ref.Bounds(), img, img.Bounds(), draw.Src, nil)
	s := resnetSpec()
	s.ChannelOrder = "RGB"
	out := runCrops(t, img, s, 1)[0]
	var worst float64
	for y := 0; y < 224; y++ {
		for x := 0; x < 224; x++ {
			c := ref.RGBA64At(16+x, 101+y)
			for ch, v := range []uint16{c.R, c.G, c.B} {
				worst = max(worst, math.Abs(float64(out[(ch*224+y)*224+x])-float64(v)/257))
			}
		}
	}
	// The reference reads the NRGBA source through x/image/draw's own path;
	// both keep 16 bits, so they agree to a 16-bit step.
	if worst > 1.0/257+1e-4 {
		t.Fatalf("max |crop - reference| = %v, want <= 1/257", worst)
	}
	// And the crop offset really matters: one pixel off is far from it.
	var offByOne float64
	for x := 0; x < 224; x++ {
		c := ref.RGBA64At(17+x, 101)
		offByOne += math.Abs(float64(out[x]) - float64(c.R)/257)
	}
	if offByOne/224 < 5 {
		t.Fatalf("a crop one pixel to the right differs by only %v on average: the test image is too smooth", offByOne/224)
	}
}

// TestTenCrops uses a coordinate-encoded 256x300 image, which Resize 256 leaves
// unscaled, and checks that every output pixel of the ten 224x224 crops comes
// from the expected source pixel: top-left (0,0), top-right (32,0),
// bottom-left (0,76), bottom-right (32,76), center (16,38), then the same five
// mirrored.
func TestTenCrops(t *testing.T) {
	const w, h = 256, 300
	img := image.NewRGBA64(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetRGBA64(x, y, color.RGBA64{uint16(x * 200), uint16(y * 200), 0, 0xFFFF})
		}
	}
	s := resnetSpec()
	s.ChannelOrder = "RGB"
	out := runCrops(t, img, s, 10)
	origins := []image.Point{{0, 0}, {32, 0}, {0, 76}, {32, 76}, {16, 38}}
	for i, crop := range out {
		o := origins[i%5]
		for y := 0; y < 224; y++ {
			for x := 0; x < 224; x++ {
				sx := o.X + x
				if i >= 5 {
					sx = o.X + 223 - x
				}
				gx := int(math.Round(float64(crop[y*224+x]) * 257 / 200))
				gy := int(math.Round(float64(crop[(224+y)*224+x]) * 257 / 200))
				if gx != sx || gy != o.Y+y {
					t.Fatalf("crop %d pixel (%d,%d) comes from (%d,%d), want (%d,%d)", i, x, y, gx, gy, sx, o.Y+y)
				}
			}
		}
	}
}

// TestMirrorWithMeanImage: a mirrored crop is the mirror of the
// mean-subtracted crop (the mean is indexed by source position, as Caffe's
// DataTransformer does).
func TestMirrorWithMeanImage(t *testing.T) {
	img := randomNRGBA(4, 2, 10)
	s := Spec{Channels: 3, Height: 2, Width: 4, ChannelOrder: "RGB", Scale: 2}
	s.Mean = make([]float32, 3*2*4)
	for i := range s.Mean {
		s.Mean[i] = float32(i)
	}
	out := runCrops(t, img, s, 10)
	for i := 0; i < 5; i++ {
		a, m := out[i], out[i+5]
		for c := 0; c < 3; c++ {
			for y := 0; y < 2; y++ {
				for x := 0; x < 4; x++ {
					if a[(c*2+y)*4+x] != m[(c*2+y)*4+3-x] {
						t.Fatalf("crop %d is not the mirror of crop %d at c%d (%d,%d)", i+5, i, c, x, y)
					}
				}
			}
		}
	}
	// And crop 0 itself is (pixel - mean) * 2.
	if want := (float32(img.Pix[4*3+1]) - s.Mean[8+3]) * 2; out[0][8+3] != want {
		t.Fatalf("G at (3,0) = %v, want %v", out[0][8+3], want)
	}
}

// TestBoxReduce checks the integer box pre-reduction against a naive average
// of 16-bit values, including the even trimming of leftover rows and columns.
func TestBoxReduce(t *testing.T) {
	img := randomNRGBA(23, 17, 11) // 23 = 7*3 + 2, 17 = 5*3 + 2: one leftover column/row on each side
	var b Buffers
	b.reduce(newRowReader(img), img.Bounds(), 3)
	if b.work.Rect != image.Rect(0, 0, 7, 5) {
		t.Fatalf("reduced to %v, want 7x5", b.work.Rect)
	}
	for y := 0; y < 5; y++ {
		for x := 0; x < 7; x++ {
			var sum [3]int
			for j := 0; j < 3; j++ {
				for i := 0; i < 3; i++ {
					p := img.Pix[(1+3*y+j)*img.Stride+4*(1+3*x+i):]
					for c := range 3 {
						sum[c] += int(p[c]) * 257
					}
				}
			}
			got := b.work.RGBA64At(x, y)
			for c, v := range []uint16{got.R, got.G, got.B} {
				if want := (sum[c] + 4) / 9; int(v) != want {
					t.Fatalf("(%d,%d) channel %d = %d, want %d", x, y, c, v, want)
				}
			}
			if got.A != 0xFFFF {
				t.Fatalf("alpha %d", got.A)
			}
		}
	}
}

// TestLargeImageMatchesDirectResize: for a large smooth image, the box
// pre-reduction followed by CatmullRom stays within a small fraction of a
// level of a direct CatmullRom resize of the full image, and the crop is in
// the same place (the image is a diagonal gradient, so a shift would show).
func TestLargeImageMatchesDirectResize(t *testing.T) {
	const w, h = 1600, 1200 // box factor min(1600/(2*341), 1200/(2*256)) = 2
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			fx, fy := float64(x)/w, float64(y)/h
			img.SetNRGBA(x, y, color.NRGBA{
				uint8(255 * fx), uint8(255 * fy),
				uint8(127.5 + 127.5*math.Sin(6*fx+4*fy)), 255,
			})
		}
	}
	rw, rh := ResizedSize(w, h, 256)
	if rw != 341 || rh != 256 {
		t.Fatalf("resized %dx%d", rw, rh)
	}
	ref := image.NewRGBA64(image.Rect(0, 0, rw, rh))
	draw.CatmullRom.Scale(ref, ref.Bounds(), img, img.Bounds(), draw.Src, nil)
	s := resnetSpec()
	s.ChannelOrder = "RGB"
	out := runCrops(t, img, s, 1)[0]
	ox, oy := (rw-224)/2, (rh-224)/2
	var worst float64
	for y := 0; y < 224; y++ {
		for x := 0; x < 224; x++ {
			c := ref.RGBA64At(ox+x, oy+y)
			for ch, v := range []uint16{c.R, c.G, c.B} {
				worst = max(worst, math.Abs(float64(out[(ch*224+y)*224+x])-float64(v)/257))
			}
		}
	}
	t.Logf("max difference %.3f levels", worst)
	// Measured 0.04 levels; a misplaced crop or a missing box normalisation
	// would cost whole levels on this gradient.
	if worst > 0.25 {
		t.Fatalf("max |box+CatmullRom - CatmullRom| = %v levels, want <= 0.25", worst)
	}
}

func TestCropErrors(t *testing.T) {
	img := randomNRGBA(300, 500, 12)
	good := resnetSpec()
	tensor := func(n int) [][]float32 {
		d := make([][]float32, n)
		for i := range d {
			d[i] = make([]float32, 3*224*224)
		}
		return d
	}
	tests := []struct {
		name  string
		img   image.Image
		spec  func(*Spec)
		n     int
		dst   [][]float32
		geom  bool // a *GeometryError, else a *SpecError
		words string
	}{
		{"resize below crop", img, func(s *Spec) { s.Resize = 200 }, 1, tensor(1), true, "smaller than the 224x224"},
		{"crop wider than image", img, func(s *Spec) { s.Width, s.Resize = 300, 256 }, 1, [][]float32{make([]float32, 3*224*300)}, true, "smaller than the 300x224"},
		{"extreme aspect ratio", image.NewGray(image.Rect(0, 0, 10, 300)), func(s *Spec) {}, 1, tensor(1), true, "256x7680, more than 524288 pixels"},
		{"empty image", image.NewRGBA(image.Rect(0, 0, 0, 5)), func(s *Spec) {}, 1, tensor(1), true, "empty"},
		{"n = 5", img, func(s *Spec) {}, 5, tensor(5), false, "use 1"},
		{"short dst", img, func(s *Spec) {}, 10, tensor(9), false, "room for 9"},
		{"wrong tensor length", img, func(s *Spec) {}, 1, [][]float32{make([]float32, 10)}, false, "must be Channels*Height*Width = 150528"},
		{"2 channels", img, func(s *Spec) { s.Channels = 2 }, 1, tensor(1), false, "only 1 (gray) and 3"},
		{"GRAY with 3", img, func(s *Spec) { s.ChannelOrder = "GRAY" }, 1, tensor(1), false, `use "BGR"`},
		{"BGR with 1", img, func(s *Spec) { s.Channels = 1 }, 1, tensor(1), false, `use "GRAY"`},
		{"lower case", img, func(s *Spec) { s.ChannelOrder = "bgr" }, 1, tensor(1), false, `"bgr"`},
		{"zero size", img, func(s *Spec) { s.Height = 0 }, 1, tensor(1), false, "must be positive"},
		{"mean size", img, func(s *Spec) { s.Mean = make([]float32, 10) }, 1, tensor(1), false, "mean image has 10 values"},
		{"mean values", img, func(s *Spec) { s.MeanValues = []float32{1, 2} }, 1, tensor(1), false, "2 mean values for 3 channels"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			tc.spec(&s)
			err := Crops(tc.img, s, tc.n, tc.dst)
			var ge *GeometryError
			var se *SpecError
			switch {
			case err == nil:
				t.Fatal("no error")
			case tc.geom && !errors.As(err, &ge), !tc.geom && !errors.As(err, &se):
				t.Fatalf("error %T %q", err, err)
			case !strings.Contains(err.Error(), tc.words):
				t.Fatalf("error %q does not say %q", err, tc.words)
			}
		})
	}
}

// TestDefaultsLeNet: Resize 0 means the crop size and Scale 0 means 1; a
// 56x84 gray digit for a 28x28 LeNet with scale 1/256 comes out as 28x42
// center-cropped, values in 0..1.
func TestDefaultsLeNet(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 56, 84))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	s := Spec{Channels: 1, Height: 28, Width: 28, ChannelOrder: "GRAY", Scale: 0.00390625}
	out := runCrops(t, img, s, 1)[0]
	for i, v := range out {
		if v != 255*0.00390625 {
			t.Fatalf("value %d = %v, want %v", i, v, 255*0.00390625)
		}
	}
	s.Scale = 0
	if out := runCrops(t, img, s, 1)[0]; out[0] != 255 {
		t.Fatalf("Scale 0: %v, want 255 (scale 1)", out[0])
	}
}

// TestBuffersReuse: with a Buffers that retains its scratch, a second
// same-sized image allocates no memory proportional to the image.
func TestBuffersReuse(t *testing.T) {
	img := randomNRGBA(640, 480, 13)
	s := resnetSpec()
	dst := [][]float32{make([]float32, 3*224*224)}
	b := Buffers{Retain: true}
	if err := b.Crops(img, s, 1, dst); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := b.Crops(img, s, 1, dst); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// The CatmullRom scaler pools its temporary (341*480*32 bytes = 5 MB);
	// a GC between calls may empty the pool, so allow one temporary at most.
	if got := after.TotalAlloc - before.TotalAlloc; got > 6<<20 {
		t.Errorf("second call allocated %d bytes", got)
	}
	var fresh, freshAfter runtime.MemStats
	runtime.ReadMemStats(&fresh)
	if err := Crops(img, s, 1, dst); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&freshAfter)
	t.Logf("with Buffers: %d bytes; without: %d bytes", after.TotalAlloc-before.TotalAlloc, freshAfter.TotalAlloc-fresh.TotalAlloc)
}
