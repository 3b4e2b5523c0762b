package caffe

import "google.golang.org/protobuf/encoding/protowire"

// Field numbers from Caffe's src/caffe/proto/caffe.proto (BVLC/caffe master).
// Only the fields residual reads or writes are listed; everything else is
// skipped by the readers.
const (
	// NetParameter
	netName       protowire.Number = 1
	netLayersV1   protowire.Number = 2 // DEPRECATED V1LayerParameter; refused
	netInput      protowire.Number = 3
	netInputDim   protowire.Number = 4
	netInputShape protowire.Number = 8
	netLayer      protowire.Number = 100

	// LayerParameter
	layerName        protowire.Number = 1
	layerType        protowire.Number = 2
	layerBottom      protowire.Number = 3
	layerTop         protowire.Number = 4
	layerBlobs       protowire.Number = 7
	layerInclude     protowire.Number = 8
	layerExclude     protowire.Number = 9
	layerTransform   protowire.Number = 100
	layerConcat      protowire.Number = 104
	layerConv        protowire.Number = 106
	layerDropout     protowire.Number = 108
	layerEltwise     protowire.Number = 110
	layerInnerProd   protowire.Number = 117
	layerPooling     protowire.Number = 121
	layerReLU        protowire.Number = 123
	layerSoftmax     protowire.Number = 125
	layerFlatten     protowire.Number = 135
	layerBatchNorm   protowire.Number = 139
	layerScale       protowire.Number = 142
	layerInput       protowire.Number = 143
	netStateRulePhse protowire.Number = 1 // NetStateRule.phase

	// BlobShape
	shapeDim protowire.Number = 1

	// BlobProto
	blobNum        protowire.Number = 1
	blobChannels   protowire.Number = 2
	blobHeight     protowire.Number = 3
	blobWidth      protowire.Number = 4
	blobData       protowire.Number = 5
	blobShape      protowire.Number = 7
	blobDoubleData protowire.Number = 8

	// ConvolutionParameter
	convNumOutput protowire.Number = 1
	convBiasTerm  protowire.Number = 2
	convPad       protowire.Number = 3
	convKernel    protowire.Number = 4
	convGroup     protowire.Number = 5
	convStride    protowire.Number = 6
	convPadH      protowire.Number = 9
	convPadW      protowire.Number = 10
	convKernelH   protowire.Number = 11
	convKernelW   protowire.Number = 12
	convStrideH   protowire.Number = 13
	convStrideW   protowire.Number = 14
	convAxis      protowire.Number = 16
	convDilation  protowire.Number = 18

	// BatchNormParameter
	bnUseGlobalStats protowire.Number = 1
	bnMovingAvg      protowire.Number = 2
	bnEps            protowire.Number = 3

	// ScaleParameter
	scaleAxis     protowire.Number = 1
	scaleNumAxes  protowire.Number = 2
	scaleBiasTerm protowire.Number = 4

	// ReLUParameter
	reluNegSlope protowire.Number = 1

	// EltwiseParameter
	eltOperation protowire.Number = 1
	eltCoeff     protowire.Number = 2

	// PoolingParameter
	poolPool      protowire.Number = 1
	poolKernel    protowire.Number = 2
	poolStride    protowire.Number = 3
	poolPad       protowire.Number = 4
	poolKernelH   protowire.Number = 5
	poolKernelW   protowire.Number = 6
	poolStrideH   protowire.Number = 7
	poolStrideW   protowire.Number = 8
	poolPadH      protowire.Number = 9
	poolPadW      protowire.Number = 10
	poolGlobal    protowire.Number = 12
	poolRoundMode protowire.Number = 13

	// InnerProductParameter
	ipNumOutput protowire.Number = 1
	ipBiasTerm  protowire.Number = 2
	ipAxis      protowire.Number = 5
	ipTranspose protowire.Number = 6

	// SoftmaxParameter
	softmaxAxis protowire.Number = 2

	// ConcatParameter
	concatDim  protowire.Number = 1 // DEPRECATED concat_dim
	concatAxis protowire.Number = 2

	// FlattenParameter
	flattenAxis    protowire.Number = 1
	flattenEndAxis protowire.Number = 2

	// DropoutParameter
	dropoutRatio protowire.Number = 1

	// InputParameter
	inputShape protowire.Number = 1

	// TransformationParameter
	tfScale     protowire.Number = 1
	tfMirror    protowire.Number = 2
	tfCropSize  protowire.Number = 3
	tfMeanFile  protowire.Number = 4
	tfMeanValue protowire.Number = 5
	tfForceGray protowire.Number = 7
)

// Default parameter values, as caffe.proto declares them. The readers start
// every parameter struct from these, and code that meets a nil parameter
// (the layer did not carry it) should use them too.

// DefaultConvolutionParam returns ConvolutionParameter's defaults.
func DefaultConvolutionParam() *ConvolutionParam {
	return &ConvolutionParam{BiasTerm: true, Group: 1, Axis: 1}
}

// DefaultBatchNormParam returns BatchNormParameter's defaults.
func DefaultBatchNormParam() *BatchNormParam {
	return &BatchNormParam{Eps: float64(float32(1e-5)), MovingAvgFraction: float64(float32(0.999))}
}

// DefaultScaleParam returns ScaleParameter's defaults.
func DefaultScaleParam() *ScaleParam { return &ScaleParam{Axis: 1, NumAxes: 1} }

// DefaultReLUParam returns ReLUParameter's defaults.
func DefaultReLUParam() *ReLUParam { return &ReLUParam{} }

// DefaultEltwiseParam returns EltwiseParameter's defaults.
func DefaultEltwiseParam() *EltwiseParam { return &EltwiseParam{Operation: EltwiseSum} }

// DefaultPoolingParam returns PoolingParameter's defaults.
func DefaultPoolingParam() *PoolingParam {
	return &PoolingParam{Pool: PoolMax, Stride: 1, RoundMode: RoundCeil}
}

// DefaultInnerProductParam returns InnerProductParameter's defaults.
func DefaultInnerProductParam() *InnerProductParam {
	return &InnerProductParam{BiasTerm: true, Axis: 1}
}

// DefaultSoftmaxParam returns SoftmaxParameter's defaults.
func DefaultSoftmaxParam() *SoftmaxParam { return &SoftmaxParam{Axis: 1} }

// DefaultConcatParam returns ConcatParameter's defaults.
func DefaultConcatParam() *ConcatParam { return &ConcatParam{Axis: 1} }

// DefaultFlattenParam returns FlattenParameter's defaults.
func DefaultFlattenParam() *FlattenParam { return &FlattenParam{Axis: 1, EndAxis: -1} }

// DefaultDropoutParam returns DropoutParameter's defaults.
func DefaultDropoutParam() *DropoutParam { return &DropoutParam{Ratio: float64(float32(0.5))} }

// DefaultTransformParam returns TransformationParameter's defaults.
func DefaultTransformParam() *TransformParam { return &TransformParam{Scale: 1} }
