// Package preprocess turns image bytes into a network's input tensors, the way
// the ResNet authors prepared ImageNet images for Caffe (DESIGN.md decision 4).
//
// # Decoding
//
// Decode sniffs the format from the leading bytes and accepts JPEG, PNG, GIF
// (the first frame, placed on the logical screen), WebP, BMP and TIFF, using the
// standard library and golang.org/x/image. It reads the header first and
// refuses images whose width*height exceeds the limit (DefaultMaxPixels unless
// the caller gives another) before any pixel memory is allocated. Decoder
// panics are recovered and reported as errors. All refusals are *ImageError
// values; errors.Is tells ErrEmpty, ErrUnsupported, ErrTooLarge and ErrCorrupt
// apart.
//
// For JPEG, Decode parses the APP1 Exif segment itself (TIFF header in either
// byte order, IFD0, tag 0x0112) and applies orientations 2..8 (mirror, rotate,
// transpose), so the image comes back as a person would see it.
//
// # Colour
//
// Every pixel model becomes opaque RGB with 16 bits per channel before
// resizing: 8-bit values v are stored as v*257, so they come back exactly.
// Transparent pixels are composited over white. YCbCr uses the JFIF (BT.601
// full-range) conversion of color.YCbCrToRGB, as libjpeg does; CMYK (including
// Adobe CMYK/YCCK JPEGs, which image/jpeg already un-inverts) uses
// R = (255-C)(255-K)/255 and likewise for G, B; gray repeats its value in the
// three channels; palettes are looked up; 16-bit samples are scaled to 0..255
// as v/257. A one-channel model receives luminance by ITU-R BT.601:
// Y = 0.299 R + 0.587 G + 0.114 B on the 0..255 values.
//
// # Geometry
//
// An image that is exactly Width x Height is used as is. Any other image is
// resized so that its shorter side equals Spec.Resize (the crop's longer side
// when Resize is 0, as for LeNet's 28x28; the longer side keeps
// the aspect ratio, rounded to nearest) and the Height x Width crop is taken at
// offsets ((w-Width)/2, (h-Height)/2), floored. The resize uses
// golang.org/x/image/draw's CatmullRom kernel: bicubic (Catmull-Rom, a = -0.5)
// when enlarging, and a low-pass filter of support widened by the scale
// factor when shrinking, so large photos are not aliased. It is close to, but
// not the same as, the bilinear/bicubic resizes the authors ran through
// OpenCV and Matlab: exact pixel equality with their pipeline is not expected.
//
// Images at least four times the resized size are first reduced by an
// integer box filter of f x f, f = min(w/(2*rw), h/(2*rh)) (rw x rh being the
// resized size), which leaves them between two and four times the resized
// size: the CatmullRom pass then costs little time and memory even for a
// 64 MP photo, and the box average is itself a low-pass filter. Up to f-1
// leftover rows and columns are trimmed evenly from both sides, which moves
// the crops by less than a quarter of an output pixel. Measured here on a
// smooth 1600x1200 image, the result stays within 0.04 levels (of 255) of a
// direct CatmullRom resize; on a 12 MP JPEG it is about three times faster
// and needs a 6 MB temporary instead of 33 MB.
//
// Crops refuses (with a *GeometryError) a resized image smaller than the crop
// (Spec.Resize below the crop size) and one larger than MaxResizedPixels (an
// extreme aspect ratio), and returns a *SpecError for an unusable Spec.
//
// Ten-crop mode cuts, from the resized image, the top-left, top-right,
// bottom-left, bottom-right and center crops, then their horizontal mirrors in
// the same order (Caffe's oversample order). A mirrored crop is the mirror
// image of the mean-subtracted crop. An image used as is yields five equal
// crops and five equal mirrors.
//
// # Headers and memory
//
// ReadHeader reads what the bytes say before any pixel is decoded (format,
// size, colour model, Exif orientation) and refuses, before any pixel
// memory is allocated, what Decode would refuse for the header alone: not
// an image, too many pixels, and a file cut off before the end its decoder
// needs (the JPEG end-of-image marker, the PNG IEND chunk, the end of the
// first GIF frame, the WebP image chunk or, for lossless WebP, its entropy
// codes). Decode runs it first. Its walks frame the data exactly as the
// decoders do, so they never refuse what a decoder accepts (FuzzReadHeader).
//
// Header.Memory bounds, from the header alone, everything Decode and Crops
// will allocate for the image: per format, the decoded image and the
// decoder's working memory as image/jpeg, image/png, image/gif and
// golang.org/x/image's decoders allocate them (memory.go says what each
// term is), the Exif or GIF-canvas copy, and Crops' scratch: the source
// box-reduced as RGBA64, x/image/draw's temporary of resized width x
// reduced height [4]float64 and its weights, and the resized RGBA64 image.
// For lossless WebP, whose Huffman tables depend on the bitstream and may
// take a hundred megabytes in a file made for it, ReadHeader walks the
// entropy codes (vp8l.go) to count them for the file at hand.
// TestMemoryBoundsAllocations holds the bound against measured allocations
// for every format and layout, and within 25% of them (plus 128 KiB) except
// for TIFF, whose bound is a worst case of its compressed strips.
//
// The zero Buffers allocates Crops' scratch per call and keeps it only
// while it is small (KeepLimit: a LeNet digit's, never a ResNet crop's), so
// a long-lived one (a core.Model keeps one) holds at most that between
// images; Buffers.Retain keeps all scratch instead, for batch use.
//
// # Output
//
// Each crop is Channels x Height x Width float32, row-major, in
// Spec.ChannelOrder ("BGR" for Caffe's ResNets), value = (v - mean) * Scale,
// where v is 0..255 and mean is Spec.Mean at the pixel's position, else
// Spec.MeanValues per channel, else 0.
package preprocess
