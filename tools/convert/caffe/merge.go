package caffe

// needsBlobs reports whether a deploy layer of this kind cannot run without
// trained blobs. (Scale with a second bottom takes its factors from that
// bottom and has no blobs.)
func needsBlobs(l *Layer) bool {
	switch l.Type {
	case "Convolution", "InnerProduct", "BatchNorm":
		return true
	case "Scale":
		return len(l.Bottoms) < 2
	}
	return false
}

// Merge combines a deploy net (from a .prototxt) with a trained net (from a
// .caffemodel), as Caffe's CopyTrainedLayersFrom does: the deploy net
// defines the layers, inputs and name, and each deploy layer takes the blobs
// of the trained layer with the same name. Trained layers with no deploy
// counterpart (Data, SoftmaxWithLoss, Accuracy, ...) are not used. Blob
// shapes are not checked here; a deploy layer that needs blobs
// (Convolution, InnerProduct, BatchNorm, Scale) but has no same-named
// trained layer is a [*MissingLayerError]. The inputs are not modified:
// layers are copied, blob data is shared.
func Merge(deploy, trained *Net) (*Net, error) {
	byName := make(map[string]*Layer, len(trained.Layers))
	for _, l := range trained.Layers {
		// With duplicate names (a train/test pair), the one holding blobs wins.
		if prev, ok := byName[l.Name]; !ok || len(prev.Blobs) == 0 && len(l.Blobs) > 0 {
			byName[l.Name] = l
		}
	}
	out := &Net{Name: deploy.Name, Inputs: deploy.Inputs}
	if out.Name == "" {
		out.Name = trained.Name
	}
	for _, l := range deploy.Layers {
		c := *l
		if t, ok := byName[l.Name]; ok {
			c.Blobs = t.Blobs
		} else if needsBlobs(l) {
			return nil, &MissingLayerError{Layer: l.Name, Type: l.Type}
		}
		out.Layers = append(out.Layers, &c)
	}
	return out, nil
}
