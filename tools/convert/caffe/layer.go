package caffe

import "math"

// Decoding of LayerParameter and the layer-specific parameter messages.

// decodeLayer decodes one LayerParameter. The phase comes from the first
// include/exclude rule that names one (the layer's own `phase` field is the
// state Caffe ran it in, not a rule, and is ignored).
func decodeLayer(m fields) (*Layer, error) {
	l := &Layer{Phase: PhaseAny}
	var blobs []fields // decoded after the name is known, whatever the field order
	for {
		ok, err := m.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		switch m.field() {
		case layerName:
			l.Name, err = m.str("LayerParameter.name")
		case layerType:
			l.Type, err = m.str("LayerParameter.type")
		case layerBottom:
			var s string
			s, err = m.str("LayerParameter.bottom")
			l.Bottoms = append(l.Bottoms, s)
		case layerTop:
			var s string
			s, err = m.str("LayerParameter.top")
			l.Tops = append(l.Tops, s)
		case layerBlobs:
			var s fields
			s, err = m.sub("LayerParameter.blobs")
			blobs = append(blobs, s)
		case layerInclude, layerExclude:
			exclude := m.field() == layerExclude
			var s fields
			if s, err = m.sub("LayerParameter.include/exclude"); err != nil {
				return nil, err
			}
			var ph int
			var has bool
			if ph, has, err = decodeRulePhase(s); err == nil && has && l.Phase == PhaseAny {
				if exclude { // excluded from one phase = included in the other
					ph = 1 - ph
				}
				l.Phase = PhaseFromWire(ph)
			}
		case layerTransform:
			l.Transform, err = decodeParam(m, "transform_param", l.Transform, DefaultTransformParam, decodeTransform)
		case layerConcat:
			l.Concat, err = decodeParam(m, "concat_param", l.Concat, DefaultConcatParam, decodeConcat)
		case layerConv:
			l.Conv, err = decodeParam(m, "convolution_param", l.Conv, DefaultConvolutionParam, decodeConv)
		case layerDropout:
			l.Dropout, err = decodeParam(m, "dropout_param", l.Dropout, DefaultDropoutParam, decodeDropout)
		case layerEltwise:
			l.Eltwise, err = decodeParam(m, "eltwise_param", l.Eltwise, DefaultEltwiseParam, decodeEltwise)
		case layerInnerProd:
			l.InnerProd, err = decodeParam(m, "inner_product_param", l.InnerProd, DefaultInnerProductParam, decodeInnerProd)
		case layerPooling:
			l.Pooling, err = decodeParam(m, "pooling_param", l.Pooling, DefaultPoolingParam, decodePooling)
		case layerReLU:
			l.ReLU, err = decodeParam(m, "relu_param", l.ReLU, DefaultReLUParam, decodeReLU)
		case layerSoftmax:
			l.Softmax, err = decodeParam(m, "softmax_param", l.Softmax, DefaultSoftmaxParam, decodeSoftmax)
		case layerFlatten:
			l.Flatten, err = decodeParam(m, "flatten_param", l.Flatten, DefaultFlattenParam, decodeFlatten)
		case layerBatchNorm:
			l.BatchNorm, err = decodeParam(m, "batch_norm_param", l.BatchNorm, DefaultBatchNormParam, decodeBatchNorm)
		case layerScale:
			l.Scale, err = decodeParam(m, "scale_param", l.Scale, DefaultScaleParam, decodeScale)
		case layerInput:
			l.Input, err = decodeParam(m, "input_param", l.Input, func() *InputParam { return &InputParam{} }, decodeInput)
		default:
			err = m.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	for i, s := range blobs {
		b, err := decodeBlob(s, l.Name, i)
		if err != nil {
			return nil, err
		}
		l.Blobs = append(l.Blobs, b)
	}
	return l, nil
}

// decodeParam decodes an embedded parameter message into a struct that
// starts from Caffe's defaults. A second occurrence of the same parameter
// message merges into the first, as protobuf does.
func decodeParam[T any](m fields, what string, cur *T, def func() *T, dec func(fields, *T) error) (*T, error) {
	s, err := m.sub(what)
	if err != nil {
		return nil, err
	}
	p := cur
	if p == nil {
		p = def()
	}
	for {
		ok, err := s.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return p, nil
		}
		if err := dec(s, p); err != nil {
			return nil, err
		}
	}
}

func decodeRulePhase(m fields) (phase int, has bool, err error) {
	for {
		ok, err := m.next()
		if err != nil || !ok {
			return phase, has, err
		}
		if m.field() == netStateRulePhse {
			v, err := m.enum("NetStateRule.phase", phaseEnum)
			if err != nil {
				return 0, false, err
			}
			phase, has = v, true
		} else if err := m.skip(); err != nil {
			return 0, false, err
		}
	}
}

// Each decodeX handles the current field of its message (already read by
// next) and skips the fields residual does not use.

func decodeConv(m fields, p *ConvolutionParam) (err error) {
	switch m.field() {
	case convNumOutput:
		p.NumOutput, err = m.uint32v("num_output")
	case convBiasTerm:
		p.BiasTerm, err = m.boolean("bias_term")
	case convPad:
		p.Pad, err = m.uint32s(p.Pad, "pad")
	case convKernel:
		p.KernelSize, err = m.uint32s(p.KernelSize, "kernel_size")
	case convStride:
		p.Stride, err = m.uint32s(p.Stride, "stride")
	case convDilation:
		p.Dilation, err = m.uint32s(p.Dilation, "dilation")
	case convGroup:
		p.Group, err = m.uint32v("group")
	case convPadH:
		p.PadH, err = m.uint32v("pad_h")
		p.HasPadHW = true
	case convPadW:
		p.PadW, err = m.uint32v("pad_w")
		p.HasPadHW = true
	case convKernelH:
		p.KernelH, err = m.uint32v("kernel_h")
		p.HasKernelHW = true
	case convKernelW:
		p.KernelW, err = m.uint32v("kernel_w")
		p.HasKernelHW = true
	case convStrideH:
		p.StrideH, err = m.uint32v("stride_h")
		p.HasStrideHW = true
	case convStrideW:
		p.StrideW, err = m.uint32v("stride_w")
		p.HasStrideHW = true
	case convAxis:
		p.Axis, err = m.int32v("axis")
	default:
		err = m.skip()
	}
	return err
}

func decodeBatchNorm(m fields, p *BatchNormParam) (err error) {
	switch m.field() {
	case bnUseGlobalStats:
		var v bool
		v, err = m.boolean("use_global_stats")
		p.UseGlobalStats = &v
	case bnMovingAvg:
		p.MovingAvgFraction, err = m.float("moving_average_fraction")
	case bnEps:
		p.Eps, err = m.float("eps")
	default:
		err = m.skip()
	}
	return err
}

func decodeScale(m fields, p *ScaleParam) (err error) {
	switch m.field() {
	case scaleAxis:
		p.Axis, err = m.int32v("axis")
	case scaleNumAxes:
		p.NumAxes, err = m.int32v("num_axes")
	case scaleBiasTerm:
		p.BiasTerm, err = m.boolean("bias_term")
	default:
		err = m.skip()
	}
	return err
}

func decodeReLU(m fields, p *ReLUParam) (err error) {
	if m.field() == reluNegSlope {
		p.NegativeSlope, err = m.float("negative_slope")
		return err
	}
	return m.skip()
}

func decodeEltwise(m fields, p *EltwiseParam) (err error) {
	switch m.field() {
	case eltOperation:
		p.Operation, err = m.enum("operation", eltwiseEnum)
	case eltCoeff:
		p.Coeff, err = m.floats(p.Coeff, "coeff")
	default:
		err = m.skip()
	}
	return err
}

func decodePooling(m fields, p *PoolingParam) (err error) {
	switch m.field() {
	case poolPool:
		p.Pool, err = m.enum("pool", poolEnum)
	case poolKernel:
		p.KernelSize, err = m.uint32v("kernel_size")
	case poolStride:
		p.Stride, err = m.uint32v("stride")
	case poolPad:
		p.Pad, err = m.uint32v("pad")
	case poolKernelH:
		p.KernelH, err = m.uint32v("kernel_h")
		p.HasKernelHW = true
	case poolKernelW:
		p.KernelW, err = m.uint32v("kernel_w")
		p.HasKernelHW = true
	case poolStrideH:
		p.StrideH, err = m.uint32v("stride_h")
		p.HasStrideHW = true
	case poolStrideW:
		p.StrideW, err = m.uint32v("stride_w")
		p.HasStrideHW = true
	case poolPadH:
		p.PadH, err = m.uint32v("pad_h")
		p.HasPadHW = true
	case poolPadW:
		p.PadW, err = m.uint32v("pad_w")
		p.HasPadHW = true
	case poolGlobal:
		p.GlobalPooling, err = m.boolean("global_pooling")
	case poolRoundMode:
		p.RoundMode, err = m.enum("round_mode", roundEnum)
	default:
		err = m.skip()
	}
	return err
}

func decodeInnerProd(m fields, p *InnerProductParam) (err error) {
	switch m.field() {
	case ipNumOutput:
		p.NumOutput, err = m.uint32v("num_output")
	case ipBiasTerm:
		p.BiasTerm, err = m.boolean("bias_term")
	case ipAxis:
		p.Axis, err = m.int32v("axis")
	case ipTranspose:
		p.Transpose, err = m.boolean("transpose")
	default:
		err = m.skip()
	}
	return err
}

func decodeSoftmax(m fields, p *SoftmaxParam) (err error) {
	if m.field() == softmaxAxis {
		p.Axis, err = m.int32v("axis")
		return err
	}
	return m.skip()
}

func decodeConcat(m fields, p *ConcatParam) (err error) {
	switch m.field() {
	case concatAxis:
		p.Axis, err = m.int32v("axis")
	case concatDim: // Caffe: concat_dim is the deprecated alias of axis
		// A uint32; Caffe's ConcatLayer casts it to int and refuses a
		// negative result, so it must fit the int32 axis it becomes.
		var v int
		if v, err = m.uint32v("concat_dim"); err == nil && v > math.MaxInt32 {
			err = m.errorf("concat_dim %d does not fit the int32 axis it stands for (Caffe refuses it too)", v)
		}
		p.Axis = v
	default:
		err = m.skip()
	}
	return err
}

func decodeFlatten(m fields, p *FlattenParam) (err error) {
	switch m.field() {
	case flattenAxis:
		p.Axis, err = m.int32v("axis")
	case flattenEndAxis:
		p.EndAxis, err = m.int32v("end_axis")
	default:
		err = m.skip()
	}
	return err
}

func decodeDropout(m fields, p *DropoutParam) (err error) {
	if m.field() == dropoutRatio {
		p.Ratio, err = m.float("dropout_ratio")
		return err
	}
	return m.skip()
}

func decodeInput(m fields, p *InputParam) error {
	if m.field() != inputShape {
		return m.skip()
	}
	s, err := m.sub("input_param.shape")
	if err != nil {
		return err
	}
	shape, err := decodeShape(s)
	if err != nil {
		return err
	}
	p.Shapes = append(p.Shapes, shape)
	return nil
}

func decodeTransform(m fields, p *TransformParam) (err error) {
	switch m.field() {
	case tfScale:
		p.Scale, err = m.float("scale")
		p.HasScale = true
	case tfMirror:
		p.Mirror, err = m.boolean("mirror")
	case tfCropSize:
		var v int
		if v, err = m.uint32v("crop_size"); err == nil && v > maxDim {
			// Caffe's DataTransformer holds it in an int.
			err = m.errorf("crop_size %d is out of range", v)
		}
		p.CropSize = v
	case tfMeanFile:
		p.MeanFile, err = m.str("mean_file")
	case tfMeanValue:
		p.MeanValue, err = m.floats(p.MeanValue, "mean_value")
	case tfForceGray:
		p.ForceGray, err = m.boolean("force_gray")
	default:
		err = m.skip()
	}
	return err
}
