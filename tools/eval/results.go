package main

// The results file: what makes a run resumable.
//
// It is JSON lines. The first line is a header naming the model (its
// manifest.json's sha256) and the crop mode; every other line is one image,
// in the schema of the -json per-image lines (imageLine). Lines are only ever
// appended, each with a single write of the whole line and its newline, so a
// crash leaves at worst a last line without its newline: that torn line is
// cut off when the file is reopened and the image is classified again. A
// complete line that is not valid JSON cannot come from a crash and is
// reported as corruption. The file is synced every syncInterval and when the
// run ends, so a power loss costs at most the last few seconds of results.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// resultsFormat names the header's format; resultsVersion changes when a line's meaning does.
const (
	resultsFormat  = "residual-eval-results"
	resultsVersion = 1
	syncInterval   = 2 * time.Second
)

// headerStart is how every header line begins (resultsHeader's first field).
const headerStart = `{"format":"` + resultsFormat + `"`

// resultsHeader is the first line of a results file. Results are only reused
// by a run with the same model files and crop mode.
type resultsHeader struct {
	Format         string `json:"format"`
	Version        int    `json:"version"`
	Model          string `json:"model"`
	ManifestSHA256 string `json:"manifest_sha256"`
	Crops          int    `json:"crops"`
}

// imageLine is one image's result: a -json per-image line and a results
// file line. Top holds the class indices of the five most probable classes
// (fewer for a model with fewer classes), most probable first, and Prob
// their probabilities (averaged over the crops in 10-crop mode). A failed
// image has Error instead.
type imageLine struct {
	File  string    `json:"file"`
	Label int       `json:"label"`
	Top   []int     `json:"top,omitempty"`
	Prob  []float64 `json:"prob,omitempty"`
	Error string    `json:"error,omitempty"`
}

// resultsFile appends image lines to a results file.
type resultsFile struct {
	f        *os.File
	name     string
	lastSync time.Time
	err      error // the first write or sync error; later writes are skipped
}

// openResults opens (creating it if needed) the results file name for a run
// described by want. It returns the images already scored in it, by path
// (lines with an error are not returned: those images are tried again), and
// the file positioned for appending. A torn last line is cut off. A file
// written for another model or crop mode, or with a corrupt line, is an error
// and is left as it is.
func openResults(name string, want resultsHeader) (*resultsFile, map[string]imageLine, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, err
	}
	done, keep, err := readResults(f, name, want)
	if err == nil && keep == 0 {
		// New, empty or holding only a torn header: start it afresh.
		var line []byte
		line, err = json.Marshal(want)
		if err == nil {
			err = f.Truncate(0)
		}
		if err == nil {
			_, err = f.WriteAt(append(line, '\n'), 0)
		}
		keep = int64(len(line) + 1)
	} else if err == nil {
		err = f.Truncate(keep) // drop a torn last line
	}
	if err == nil {
		_, err = f.Seek(keep, io.SeekStart)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return &resultsFile{f: f, name: name, lastSync: time.Now()}, done, nil
}

// readResults parses the whole file. keep is the length of its complete
// lines (0 when there is no complete header line).
func readResults(r io.Reader, name string, want resultsHeader) (done map[string]imageLine, keep int64, err error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, 0, err
	}
	done = map[string]imageLine{}
	complete := data[:bytes.LastIndexByte(data, '\n')+1]
	if len(complete) == 0 && len(data) > 0 && !bytes.HasPrefix(data, []byte(headerStart)) && !bytes.HasPrefix([]byte(headerStart), data) {
		// No complete line and not a torn header either: someone else's file.
		return nil, 0, fmt.Errorf("%s is not a results file of this command (it starts %.60q); give another -results file", name, data)
	}
	for n := 1; len(complete) > 0; n++ {
		end := bytes.IndexByte(complete, '\n')
		line := complete[:end]
		complete = complete[end+1:]
		if n == 1 {
			var h resultsHeader
			if err := json.Unmarshal(line, &h); err != nil || h.Format != resultsFormat {
				return nil, 0, fmt.Errorf("%s is not a results file of this command (line 1 %.60q); give another -results file", name, line)
			}
			if h.Version != resultsVersion || h.ManifestSHA256 != want.ManifestSHA256 || h.Crops != want.Crops {
				return nil, 0, fmt.Errorf("%s holds results of %s (manifest.json sha256 %.12s..., %d crop(s), format version %d); "+
					"this run is %s (sha256 %.12s..., %d crop(s), version %d): give another -results file",
					name, h.Model, h.ManifestSHA256, h.Crops, h.Version, want.Model, want.ManifestSHA256, want.Crops, want.Version)
			}
			keep += int64(len(line) + 1)
			continue
		}
		var l imageLine
		if err := json.Unmarshal(line, &l); err != nil || l.File == "" || (l.Error == "" && len(l.Top) == 0) {
			return nil, 0, fmt.Errorf("%s: line %d is corrupt (%.60q): not what a crash leaves (only a last line "+
				"without its newline is); remove the line or give another -results file", name, n, line)
		}
		keep += int64(len(line) + 1)
		if l.Error == "" {
			done[l.File] = l
		}
	}
	return done, keep, nil
}

// append writes one line with a single write call. Errors are kept (see
// err) rather than returned: the run goes on, the results just cannot be
// resumed past that point.
func (rf *resultsFile) append(l imageLine) {
	if rf.err != nil {
		return
	}
	line, err := json.Marshal(l)
	if err == nil {
		_, err = rf.f.Write(append(line, '\n'))
	}
	if err == nil && time.Since(rf.lastSync) >= syncInterval {
		err = rf.f.Sync()
		rf.lastSync = time.Now()
	}
	if err != nil {
		rf.err = fmt.Errorf("writing %s: %w", rf.name, err)
	}
}

// close syncs and closes the file; it returns the first error of the run.
func (rf *resultsFile) close() error {
	err := rf.err
	if err == nil {
		err = rf.f.Sync()
	}
	return errors.Join(err, rf.f.Close())
}
