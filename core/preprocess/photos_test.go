package preprocess

import (
	"os"
	"testing"

	"github.com/residual-go/residual/internal/testfiles"
)

// TestPhotos decodes every photograph kept for end-to-end tests and checks its
// displayed size; the Exif-rotated copy of video-001 must display like the
// original (the same frame, re-encoded once: within a few levels on average).
func TestPhotos(t *testing.T) {
	tests := []struct {
		file string
		w, h int
	}{
		{"video-001.jpeg", 150, 103},
		{"video-001.exif6.jpeg", 150, 103}, // stored 103x150, orientation 6
		{"yellow_rose.png", 400, 301},
		{"yellow_rose.lossy.webp", 400, 301},
		{"blue-purple-pink.lossless.webp", 150, 100},
	}
	s := resnetSpec()
	for _, tc := range tests {
		data, err := os.ReadFile(testfiles.Photo(t, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		img, err := Decode(data, 0)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if b := img.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h {
			t.Errorf("%s: %dx%d, want %dx%d", tc.file, b.Dx(), b.Dy(), tc.w, tc.h)
		}
		runCrops(t, img, s, 10)
	}
	orig, err := Decode(mustRead(t, testfiles.Photo(t, "video-001.jpeg")), 0)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := Decode(mustRead(t, testfiles.Photo(t, "video-001.exif6.jpeg")), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Re-encoding at quality 92 costs about 3 levels on average; a wrong
	// orientation costs ten times that (the control: the same image upside down).
	if d := meanAbsDiff(t, orig, rot); d > 5 {
		t.Errorf("mean |oriented exif6 - original| = %.2f levels, want <= 5", d)
	}
	if d := meanAbsDiff(t, orig, orient(rot, 3)); d < 20 {
		t.Errorf("mean |upside-down exif6 - original| = %.2f levels: the control should differ by > 20", d)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
