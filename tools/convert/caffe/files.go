package caffe

import (
	"fmt"
	"os"
)

// ParsePrototxtFile parses the text-format net at path; errors name the path.
func ParsePrototxtFile(path string) (*Net, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := ParsePrototxt(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// ReadModelFile reads the binary .caffemodel at path, streaming it (see
// [ReadModel]); errors name the path.
func ReadModelFile(path string) (*Net, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	n, err := ReadModel(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}
