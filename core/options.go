package core

import (
	"fmt"
	"strconv"
	"strings"
)

// ClassifyOptions select top-k, the crop mode and class activation maps.
// Every front end (tools/classify's flags, the page's options object, the
// Worker's query string) says them the same way: ParseClassifyOptions reads
// them by name, and the checks and their messages live here only.
type ClassifyOptions struct {
	// Top is the number of predictions: 0 means 5; more than the model's
	// classes means all of them.
	Top int
	// Crops is 1 (the center crop, the default when 0) or 10 (the corners,
	// the center and their mirrors; softmax averaged), as in the paper.
	Crops int
	// CAM asks for the class activation map of the top-1 class, and of
	// each class in CAMClasses (Result.Maps, in that order). The model must
	// have been opened with Options.CAM (Info.CAM).
	CAM        bool
	CAMClasses []int
}

// The options' names, as the front ends spell them (flag, query parameter,
// option object key) and as OptionError.Option names them.
const (
	OptTop        = "top"
	OptCrops      = "crops"
	OptCAM        = "cam"
	OptCAMClasses = "cam_classes"
)

// ParseClassifyOptions reads the options by name from get, which reports a
// value as text and whether it was given: "top" (an integer, at least 1),
// "crops" (1 or 10), "cam" (1, true, 0 or false), "cam_classes" (class
// indices separated by commas; implies cam). Missing options keep their
// defaults; a malformed or out-of-range one is an *OptionError.
func ParseClassifyOptions(get func(name string) (string, bool)) (ClassifyOptions, error) {
	var o ClassifyOptions
	integer := func(name, v string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, &OptionError{Option: name, Msg: fmt.Sprintf("%q is not an integer", v)}
		}
		return n, nil
	}
	if v, ok := get(OptTop); ok {
		n, err := integer(OptTop, v)
		if err != nil {
			return o, err
		}
		if n < 1 {
			return o, &OptionError{Option: OptTop, Msg: fmt.Sprintf("%d; ask for 1 or more predictions", n)}
		}
		o.Top = n
	}
	if v, ok := get(OptCrops); ok {
		n, err := integer(OptCrops, v)
		if err != nil {
			return o, err
		}
		if n != 1 && n != 10 {
			return o, badCrops(n) // 0, the struct's default, is no value to write
		}
		o.Crops = n
	}
	if v, ok := get(OptCAM); ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "1", "true", "yes", "on", "":
			o.CAM = true
		case "0", "false", "no", "off":
		default:
			return o, &OptionError{Option: OptCAM, Msg: fmt.Sprintf("%q; use 1 or 0", v)}
		}
	}
	if v, ok := get(OptCAMClasses); ok && strings.TrimSpace(v) != "" {
		for _, f := range strings.Split(v, ",") {
			n, err := integer(OptCAMClasses, f)
			if err != nil {
				return o, err
			}
			o.CAMClasses = append(o.CAMClasses, n)
		}
		o.CAM = true
	}
	return o, o.check()
}

// check validates what can be validated without the model.
func (o ClassifyOptions) check() error {
	if o.Top < 0 {
		return &OptionError{Option: OptTop, Msg: fmt.Sprintf("%d; use 0 (default 5) or more", o.Top)}
	}
	if o.Crops != 0 && o.Crops != 1 && o.Crops != 10 {
		return badCrops(o.Crops)
	}
	if len(o.CAMClasses) > 0 && !o.CAM {
		return &OptionError{Option: OptCAMClasses, Msg: "given without cam"}
	}
	for _, c := range o.CAMClasses {
		if c < 0 {
			return &OptionError{Option: OptCAMClasses, Msg: fmt.Sprintf("class %d; classes start at 0", c)}
		}
	}
	return nil
}

func badCrops(n int) error {
	return &OptionError{Option: OptCrops, Msg: fmt.Sprintf("%d; use 1 (center crop) or 10 (corners, center and mirrors)", n)}
}

// normalize checks o against a model of the given number of classes and
// fills in the defaults.
func (o ClassifyOptions) normalize(classes int) (ClassifyOptions, error) {
	if err := o.check(); err != nil {
		return o, err
	}
	if o.Top == 0 {
		o.Top = 5
	}
	o.Top = min(o.Top, classes)
	if o.Crops == 0 {
		o.Crops = 1
	}
	for _, c := range o.CAMClasses {
		if c >= classes {
			return o, &OptionError{Option: OptCAMClasses, Msg: fmt.Sprintf("class %d; the model has classes 0..%d", c, classes-1)}
		}
	}
	return o, nil
}
