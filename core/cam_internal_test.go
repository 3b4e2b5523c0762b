package core

import (
	"image"
	"math"
	"testing"

	"github.com/residual-go/residual/core/preprocess"
)

// TestPlace: crops of a scene whose map is a known asymmetric function f of
// the position in the resized image, each crop's grid sampled from f in the
// crop's own orientation (mirrored crops see f mirrored), must be placed
// back onto f: at grid cell centers bilinear interpolation is exact, so the
// placed map equals f there wherever a crop lies, and it is NaN elsewhere.
func TestPlace(t *testing.T) {
	f := func(x, y float64) float64 { return 3*x - 0.5*y + 0.01*x*y }
	spec := preprocess.Spec{Channels: 3, Height: 32, Width: 32, Resize: 40, ChannelOrder: "BGR"}
	const g = 4 // grid cells per crop side: 8 pixels each
	for _, n := range []int{1, 10} {
		l, err := preprocess.CropLayout(100, 60, spec, n) // resized to 67 x 40
		if err != nil {
			t.Fatal(err)
		}
		if l.W != 67 || l.H != 40 || len(l.Crops) != n {
			t.Fatalf("layout %+v", l)
		}
		var grids [][]float32
		for _, win := range l.Crops {
			grid := make([]float32, g*g)
			for j := range g {
				for i := range g {
					cx := (float64(i)+0.5)*8 - 0.5 // the crop pixel at the cell's center
					if win.Mirror {
						cx = 31 - cx
					}
					grid[j*g+i] = float32(f(float64(win.Rect.Min.X)+cx, float64(win.Rect.Min.Y)+(float64(j)+0.5)*8-0.5))
				}
			}
			grids = append(grids, grid)
		}
		placed := place(grids, g, g, l)
		covered := func(x, y int) bool {
			for _, win := range l.Crops {
				if image.Pt(x, y).In(win.Rect) {
					return true
				}
			}
			return false
		}
		for y := range l.H {
			for x := range l.W {
				v := placed[y*l.W+x]
				if !covered(x, y) {
					if !math.IsNaN(float64(v)) {
						t.Fatalf("n=%d: (%d,%d) lies in no crop but has %v", n, x, y, v)
					}
					continue
				}
				// Between the first and last cell centers of every window
				// covering it (pixel centers 4..28 of 32), a pixel's value is
				// interpolated, not clamped; f is bilinear, so bilinear
				// interpolation reproduces it exactly there.
				inner := true
				for _, win := range l.Crops {
					if image.Pt(x, y).In(win.Rect) {
						dx, dy := x-win.Rect.Min.X, y-win.Rect.Min.Y
						inner = inner && dx >= 4 && dx <= 27 && dy >= 4 && dy <= 27
					}
				}
				if inner {
					if d := math.Abs(float64(v) - f(float64(x), float64(y))); d > 1e-3 {
						t.Errorf("n=%d: placed(%d,%d) = %v, want %v", n, x, y, v, f(float64(x), float64(y)))
					}
				}
			}
		}
	}
}
