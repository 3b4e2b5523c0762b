// Command e2eimages writes the generated photographs the worker's end-to-end
// tests send (wasm/worker/test/admission.test.mjs): JPEGs of given sizes with
// the smooth gradients and seeded noise of a photo, so that their decoding
// cost and size are a photo's. WxH-exif6 writes the image stored turned (HxW)
// with an Exif orientation of 6, as phones write photos, so that it displays
// as WxH. Node has no JPEG encoder, hence this program; it lives under
// testdata so that ./... leaves it out of builds and tests.
//
//	go run ./wasm/worker/testdata/e2eimages -out DIR 1000x872 1000x872-exif6 ...
package main

import (
	"bytes"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"log"
	"math"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	out := flag.String("out", "", "directory to write photo-WxH.jpeg files into")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		log.Fatal("usage: e2eimages -out DIR WxH...")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	for _, arg := range flag.Args() {
		size, exif := strings.CutSuffix(arg, "-exif6")
		var w, h int
		if _, err := fmt.Sscanf(size, "%dx%d", &w, &h); err != nil || w <= 0 || h <= 0 {
			log.Fatalf("size %q: want WxH or WxH-exif6", arg)
		}
		var buf bytes.Buffer
		img := photo(w, h)
		if exif {
			img = photo(h, w) // stored turned; orientation 6 turns it back for display
		}
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
			log.Fatal(err)
		}
		data := buf.Bytes()
		if exif {
			data = withExifOrientation6(data)
		}
		if err := os.WriteFile(filepath.Join(*out, "photo-"+arg+".jpeg"), data, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// withExifOrientation6 inserts, after SOI, an APP1 Exif segment whose IFD0
// has one entry: Orientation (0x0112), SHORT, 6 ("rotate 90 clockwise to
// display"), in a big-endian TIFF structure.
func withExifOrientation6(jpegData []byte) []byte {
	tiff := []byte{'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0}
	payload := append([]byte("Exif\x00\x00"), tiff...)
	seg := []byte{0xFF, 0xE1, byte((len(payload) + 2) >> 8), byte(len(payload) + 2)}
	out := append([]byte{0xFF, 0xD8}, seg...)
	out = append(out, payload...)
	return append(out, jpegData[2:]...)
}

// photo draws w x h pixels of low-frequency waves plus seeded noise.
func photo(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	seed := uint32(w*7919 + h)
	for y := range h {
		for x := range w {
			seed ^= seed << 13
			seed ^= seed >> 17
			seed ^= seed << 5
			n := float64(seed%32) - 16
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			v := 127 + 100*math.Sin(9*fx+5*fy)
			img.SetRGBA(x, y, color.RGBA{clamp(v + n), clamp(255*fx + n), clamp(255*fy - n), 255})
		}
	}
	return img
}

func clamp(v float64) uint8 { return uint8(min(max(v, 0), 255)) }
