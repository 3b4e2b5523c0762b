package caffe

import "google.golang.org/protobuf/encoding/protowire"

// The text format names fields; these tables give each name its caffe.proto
// number (and, for enums, the value names), so text and binary share one
// decoder. Names not listed are ignored, like unknown binary fields.

type fieldInfo struct {
	num  protowire.Number
	enum map[string]int
	sub  *schema // for message fields
}

type schema struct{ fields map[string]fieldInfo }

var (
	phaseEnum   = map[string]int{"TRAIN": PhaseTrain.Wire(), "TEST": PhaseTest.Wire()}
	poolEnum    = map[string]int{"MAX": PoolMax, "AVE": PoolAve, "STOCHASTIC": PoolStochastic}
	roundEnum   = map[string]int{"CEIL": RoundCeil, "FLOOR": RoundFloor}
	eltwiseEnum = map[string]int{"PROD": EltwiseProd, "SUM": EltwiseSum, "MAX": EltwiseMax}
)

func plain(num protowire.Number) fieldInfo { return fieldInfo{num: num} }

func message(num protowire.Number, s *schema) fieldInfo { return fieldInfo{num: num, sub: s} }

func enum(num protowire.Number, e map[string]int) fieldInfo { return fieldInfo{num: num, enum: e} }

var (
	shapeSchema = &schema{map[string]fieldInfo{"dim": plain(shapeDim)}}

	blobSchema = &schema{map[string]fieldInfo{
		"num": plain(blobNum), "channels": plain(blobChannels), "height": plain(blobHeight),
		"width": plain(blobWidth), "data": plain(blobData), "shape": message(blobShape, shapeSchema),
		"double_data": plain(blobDoubleData),
	}}

	ruleSchema = &schema{map[string]fieldInfo{"phase": enum(netStateRulePhse, phaseEnum)}}

	convSchema = &schema{map[string]fieldInfo{
		"num_output": plain(convNumOutput), "bias_term": plain(convBiasTerm), "pad": plain(convPad),
		"kernel_size": plain(convKernel), "group": plain(convGroup), "stride": plain(convStride),
		"pad_h": plain(convPadH), "pad_w": plain(convPadW), "kernel_h": plain(convKernelH),
		"kernel_w": plain(convKernelW), "stride_h": plain(convStrideH), "stride_w": plain(convStrideW),
		"axis": plain(convAxis), "dilation": plain(convDilation),
	}}

	layerSchema = &schema{map[string]fieldInfo{
		"name": plain(layerName), "type": plain(layerType), "bottom": plain(layerBottom),
		"top": plain(layerTop), "blobs": message(layerBlobs, blobSchema),
		"include": message(layerInclude, ruleSchema), "exclude": message(layerExclude, ruleSchema),
		"transform_param": message(layerTransform, &schema{map[string]fieldInfo{
			"scale": plain(tfScale), "mirror": plain(tfMirror), "crop_size": plain(tfCropSize),
			"mean_file": plain(tfMeanFile), "mean_value": plain(tfMeanValue), "force_gray": plain(tfForceGray),
		}}),
		"concat_param": message(layerConcat, &schema{map[string]fieldInfo{
			"concat_dim": plain(concatDim), "axis": plain(concatAxis),
		}}),
		"convolution_param": message(layerConv, convSchema),
		"dropout_param": message(layerDropout, &schema{map[string]fieldInfo{
			"dropout_ratio": plain(dropoutRatio),
		}}),
		"eltwise_param": message(layerEltwise, &schema{map[string]fieldInfo{
			"operation": enum(eltOperation, eltwiseEnum), "coeff": plain(eltCoeff),
		}}),
		"inner_product_param": message(layerInnerProd, &schema{map[string]fieldInfo{
			"num_output": plain(ipNumOutput), "bias_term": plain(ipBiasTerm), "axis": plain(ipAxis),
			"transpose": plain(ipTranspose),
		}}),
		"pooling_param": message(layerPooling, &schema{map[string]fieldInfo{
			"pool": enum(poolPool, poolEnum), "kernel_size": plain(poolKernel), "stride": plain(poolStride),
			"pad": plain(poolPad), "kernel_h": plain(poolKernelH), "kernel_w": plain(poolKernelW),
			"stride_h": plain(poolStrideH), "stride_w": plain(poolStrideW), "pad_h": plain(poolPadH),
			"pad_w": plain(poolPadW), "global_pooling": plain(poolGlobal),
			"round_mode": enum(poolRoundMode, roundEnum),
		}}),
		"relu_param": message(layerReLU, &schema{map[string]fieldInfo{
			"negative_slope": plain(reluNegSlope),
		}}),
		"softmax_param": message(layerSoftmax, &schema{map[string]fieldInfo{"axis": plain(softmaxAxis)}}),
		"flatten_param": message(layerFlatten, &schema{map[string]fieldInfo{
			"axis": plain(flattenAxis), "end_axis": plain(flattenEndAxis),
		}}),
		"batch_norm_param": message(layerBatchNorm, &schema{map[string]fieldInfo{
			"use_global_stats": plain(bnUseGlobalStats), "moving_average_fraction": plain(bnMovingAvg),
			"eps": plain(bnEps),
		}}),
		"scale_param": message(layerScale, &schema{map[string]fieldInfo{
			"axis": plain(scaleAxis), "num_axes": plain(scaleNumAxes), "bias_term": plain(scaleBiasTerm),
		}}),
		"input_param": message(layerInput, &schema{map[string]fieldInfo{
			"shape": message(inputShape, shapeSchema),
		}}),
	}}

	netSchema = &schema{map[string]fieldInfo{
		"name": plain(netName), "layers": plain(netLayersV1), "input": plain(netInput),
		"input_dim": plain(netInputDim), "input_shape": message(netInputShape, shapeSchema),
		"layer": message(netLayer, layerSchema),
	}}
)
