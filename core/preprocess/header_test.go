package preprocess

import (
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/image/webp"

	"github.com/residual-go/residual/internal/testfiles"
)

// rawDecode runs the format's own decoder on data, as Decode does after
// ReadHeader (nil error: the decoder accepts the bytes).
func rawDecode(data []byte) (image.Image, error) {
	for _, f := range formats {
		if f.match(data) {
			return protect(func() (image.Image, error) { return f.decode(bytes.NewReader(data)) })
		}
	}
	return nil, errors.New("no format")
}

func isTruncation(err error) bool {
	var ie *ImageError
	return errors.As(err, &ie) && ie.Kind == ErrCorrupt && strings.Contains(ie.Reason, "truncated")
}

// TestReadHeaderRefusesEveryCut: a JPEG, PNG or lossy WebP cut anywhere
// before its end is refused by ReadHeader (as truncated once the header is
// whole), and the decoder refuses each of those cuts too: ReadHeader is
// never stricter than it. A GIF cut after its first frame decodes, and a
// lossless WebP cut in its pixels (after the entropy codes ReadHeader
// walks) is left to the decoder, whose refusal Decode also reports as a
// truncation.
func TestReadHeaderRefusesEveryCut(t *testing.T) {
	src := randomNRGBA(96, 64, 31)
	files := []struct {
		name    string
		data    []byte
		allCuts bool // every cut is refused by ReadHeader itself
	}{
		{"baseline JPEG", encodeJPEG(t, src, 80), true},
		{"JPEG with Exif", withAPP1(encodeJPEG(t, src, 80), exifSegment(exifTIFF(binary.BigEndian, 3, 6))), true},
		{"progressive JPEG", readTestdata(t, "video-001.progressive.jpeg"), true},
		{"JPEG with restarts", readTestdata(t, "video-001.restart2.jpeg"), true},
		{"PNG", encodePNG(t, src), true},
		{"interlaced PNG", readTestdata(t, "benchRGB-interlace.png"), true},
		{"lossy WebP", readTestdata(t, "video-001.lossy.webp"), true},
		{"lossy WebP with alpha", readTestdata(t, "yellow_rose.lossy-with-alpha.webp"), true},
		{"lossless WebP", readTestdata(t, "gopher-doc.8bpp.lossless.webp"), false},
		{"GIF", encodeGIF(t, palettedImage(96, 64)), false},
		{"interlaced GIF", readTestdata(t, "video-001.interlaced.gif"), false},
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			data := f.data
			if _, err := ReadHeader(data, 0); err != nil {
				t.Fatalf("the whole file: %v", err)
			}
			step := max(1, len(data)/400)
			truncations := 0
			for n := 1; n < len(data); n += step {
				cut := data[:n]
				_, err := ReadHeader(cut, 0)
				_, rawErr := rawDecode(cut)
				switch {
				case err == nil && f.allCuts:
					t.Fatalf("cut at %d of %d: accepted", n, len(data))
				case err == nil && rawErr != nil:
					if _, err := Decode(cut, 0); !isTruncation(err) {
						t.Fatalf("cut at %d of %d: Decode says %v, want a truncation", n, len(data), err)
					}
				case isTruncation(err):
					truncations++
					if rawErr == nil {
						t.Fatalf("cut at %d of %d: ReadHeader says %v, the decoder accepts it", n, len(data), err)
					}
				}
			}
			if truncations == 0 {
				t.Error("no cut was reported as truncated")
			}
		})
	}
}

// TestReadHeaderAcceptsWhatDecodes: for every test file and photograph,
// ReadHeader accepts it, with trailing bytes too, and reports the size
// Decode returns.
func TestReadHeaderAcceptsWhatDecodes(t *testing.T) {
	names, _ := filepath.Glob(filepath.Join("testdata", "*"))
	photos := testfiles.AllPhotos(t)
	for _, name := range append(names, photos...) {
		if ext := filepath.Ext(name); ext == ".md" || ext == ".bz2" || name == filepath.Join("testdata", "fuzz") {
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		img, err := Decode(data, 0)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for _, d := range [][]byte{data, append(bytes.Clone(data), "trailing bytes after the image"...)} {
			h, err := ReadHeader(d, 0)
			if err != nil {
				if _, rawErr := rawDecode(d); rawErr == nil {
					t.Errorf("%s (%d bytes): ReadHeader: %v", name, len(d), err)
				}
				continue
			}
			if b := img.Bounds(); h.Width != b.Dx() || h.Height != b.Dy() {
				t.Errorf("%s: header %dx%d, decoded %v", name, h.Width, h.Height, b)
			}
		}
	}
}

// TestVP8LMemory: for lossless WebP streams, including one that names a
// Huffman group index past x/image/vp8l's limit and one whose tiles skip
// groups, what x/image/webp allocates (decoding or refusing them) stays
// within the bound ReadHeader's walk of the stream gives, which is far
// below the worst case of the image's size.
func TestVP8LMemory(t *testing.T) {
	files := map[string][]byte{}
	for _, name := range []string{"gopher-doc.1bpp.lossless.webp", "gopher-doc.2bpp.lossless.webp", "gopher-doc.4bpp.lossless.webp",
		"gopher-doc.8bpp.lossless.webp", "gopher-doc.skip-hgroup.lossless.webp", "gopher-doc.with-alpha.lossless.webp",
		"tux.lossless.webp", "yellow_rose.lossy-with-alpha.webp"} {
		files[name] = readTestdata(t, name)
	}
	f, err := os.Open(filepath.Join("testdata", "large-huffman-index.lossless.webp.bz2"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if files["large-huffman-index"], err = io.ReadAll(bzip2.NewReader(f)); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		h, err := ReadHeader(data, 0)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		walked := h.layout.vp8l > 0 || h.layout.alphaVP8L > 0
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, decErr := webp.Decode(bytes.NewReader(data))
		runtime.ReadMemStats(&after)
		alloc := int64(after.TotalAlloc - before.TotalAlloc)
		bound := h.decodeBytes() + decoderState["WebP"]
		worst := vp8lWorst(int64(h.Width), int64(h.Height))
		t.Logf("%-40s %4dx%-4d walked %-5v decoded: %-5v allocated %8d, bound %8d (worst case %d)", name, h.Width, h.Height, walked, decErr == nil, alloc, bound, worst)
		if alloc > bound {
			t.Errorf("%s: x/image/webp allocated %d bytes, more than the bound %d", name, alloc, bound)
		}
		if !walked {
			t.Errorf("%s: the stream was not walked", name)
		}
	}
}

// TestJPEGLayout: the frame layout read from hand-made headers.
func TestJPEGLayout(t *testing.T) {
	// sof builds SOI, an optional APP1 Exif, a start-of-frame segment, an
	// empty scan and EOI.
	sof := func(marker byte, w, h int, exif bool, sampling ...byte) []byte {
		b := []byte{0xFF, 0xD8}
		if exif {
			b = append(b, 0xFF, 0xE1, 0, 8, 'E', 'x', 'i', 'f', 0, 0)
		}
		seg := []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), byte(len(sampling))}
		for i, s := range sampling {
			seg = append(seg, byte(i+1), s, 0)
		}
		n := len(seg) + 2
		b = append(b, 0xFF, marker, byte(n>>8), byte(n))
		return append(append(b, seg...), 0xFF, 0xD9)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"baseline 4:2:0", sof(0xC0, 100, 60, false, 0x22, 0x11, 0x11), "3 [2 1 1] [2 1 1] false"},
		{"progressive gray (sampling ignored)", sof(0xC2, 9, 9, true, 0x22), "1 [1] [1] true"},
		{"CMYK", sof(0xC1, 16, 16, false, 0x11, 0x11, 0x11, 0x11), "4 [1 1 1 1] [1 1 1 1] false"},
	}
	for _, tt := range tests {
		l, missing := jpegLayout(tt.data)
		if missing != "" {
			t.Fatalf("%s: %s", tt.name, missing)
		}
		got := strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(
			sprint(l.comps, l.h[:l.comps], l.v[:l.comps], l.progressive), "  ", " "), "\n", ""))
		if got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
	// The end-of-image marker inside an APP segment (a thumbnail) is not the end.
	thumb := []byte{0xFF, 0xD8, 0xFF, 0xE1, 0, 6, 0xFF, 0xD9, 0, 0}
	if _, missing := jpegLayout(thumb); missing == "" {
		t.Error("an EOI inside a segment was taken for the end")
	}
}

func sprint(a ...any) string { return fmt.Sprint(a...) }
