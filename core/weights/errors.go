package weights

import "fmt"

// ManifestFile is the name of the manifest at the root of a model directory.
const ManifestFile = "manifest.json"

// regenerate is the advice every model error ends with.
const regenerate = "re-run tools/convert to regenerate the model directory"

// FormatError reports a manifest that this reader refuses: malformed JSON, an
// unknown format name or version, or contents that fail validation (an op
// reading a blob nobody wrote, a tensor outside its shard, a shape that does
// not fit its op, ...). The model directory must be regenerated.
type FormatError struct {
	File string // ManifestFile, or the file the problem was found in
	Msg  string // what is wrong
	Err  error  // underlying error (JSON syntax), if any
}

func (e *FormatError) Error() string {
	msg := e.Msg
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return fmt.Sprintf("weights: %s: %s (%s)", e.File, msg, regenerate)
}

func (e *FormatError) Unwrap() error { return e.Err }

// formatErr builds a *FormatError about manifest.json.
func formatErr(format string, args ...any) *FormatError {
	return &FormatError{File: ManifestFile, Msg: fmt.Sprintf(format, args...)}
}

// ShardError reports a shard that cannot be used: missing, unreadable, or of
// the wrong size (truncated or with trailing bytes).
type ShardError struct {
	Shard string // the shard's file name
	Msg   string
	Err   error // underlying I/O error, if any
}

func (e *ShardError) Error() string {
	msg := e.Msg
	if e.Err != nil {
		if msg != "" {
			msg += ": "
		}
		msg += e.Err.Error()
	}
	return fmt.Sprintf("weights: shard %s: %s (copy the complete model directory again, or %s)", e.Shard, msg, regenerate)
}

func (e *ShardError) Unwrap() error { return e.Err }

// ChecksumError reports a shard whose sha256 differs from the manifest's: the
// file is corrupt, was cut short in transfer, or belongs to another conversion.
type ChecksumError struct {
	Shard string // the shard's file name
	Want  string // sha256 from the manifest, lowercase hex
	Got   string // sha256 of the bytes read
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("weights: shard %s: sha256 is %s but %s expects %s: the file is corrupt or from another conversion (download the model again, or %s)",
		e.Shard, e.Got, ManifestFile, e.Want, regenerate)
}
