// Package e2e holds the tests that need both sides of the weights format:
// the converter (tools/convert) and the core (core/). It has no code of its
// own besides this comment; everything is in _test.go files.
//
//   - resnet_test.go: the official ResNet-50/101/152 prototxts with seeded
//     random weights (tools/convert/caffe/fixture), converted, run by core on
//     real photographs and synthetic images, and compared with an independent
//     float64 forward pass (tools/convert/caffe/reference) whose outputs are
//     committed golden files (testdata/golden; go test ./e2e -update
//     regenerates them).
//   - mnist_test.go: the LeNet Caffe itself trained, converted and run on the
//     10,000 MNIST test digits.
//   - layers_test.go: core's tests import nothing under tools/.
//
// Why a package of its own: the dependency graph of the tests is layered like
// the code's. core does not import the converter, so core's tests do not
// either (layers_test.go enforces it), and the converter's tests use only the
// format package core/weights. Tests that join the two live above both, here.
// RATIONALE.md says more.
package e2e
