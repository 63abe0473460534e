package lincheck

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Result is the verdict of Check on one history.
type Result struct {
	// Verdict is porcupine's: Ok, Illegal, or Unknown when the check ran
	// out of time.
	Verdict porcupine.CheckResult
	// Ops and Unknown count the history's operations and lost answers.
	Ops, Unknown int
	// Visualization is the HTML file written for an Illegal history, or "".
	Visualization string
	// Took is how long the check ran.
	Took time.Duration
}

// Check runs porcupine on h with Model, giving up after timeout (0 means no
// limit). When the history is not linearizable it writes porcupine's
// visualisation to dir/<name>.html and names the file in the result; an
// error means that file could not be written.
func Check(h History, timeout time.Duration, dir, name string) (Result, error) {
	start := time.Now()
	m := Model()
	verdict, info := porcupine.CheckOperationsVerbose(m, h.Operations(), timeout)
	res := Result{Verdict: verdict, Ops: len(h.Records), Unknown: h.Unknown(), Took: time.Since(start)}
	if verdict != porcupine.Illegal {
		return res, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	path := filepath.Join(dir, safeName.ReplaceAllString(name, "_")+".html")
	if err := porcupine.VisualizePath(m, info, path); err != nil {
		return res, fmt.Errorf("writing visualisation: %w", err)
	}
	res.Visualization = path
	return res, nil
}

var safeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// ArtifactDir is where failing histories go: $OCTOSTORE_ARTIFACTS if set,
// else a temporary directory of the test.
func ArtifactDir(t testing.TB) string {
	if d := os.Getenv("OCTOSTORE_ARTIFACTS"); d != "" {
		return d
	}
	return t.TempDir()
}

// Verify checks h and fails t, naming the visualisation file, unless it is
// linearizable. A check that runs out of time is logged, not failed: it
// found no violation. It returns the result for the caller's figures.
func Verify(t testing.TB, h History, timeout time.Duration, name string) Result {
	t.Helper()
	res, err := Check(h, timeout, ArtifactDir(t), name)
	if err != nil {
		t.Errorf("%s: %v", name, err)
	}
	switch res.Verdict {
	case porcupine.Illegal:
		t.Errorf("%s: history of %d operations (%d unknown) is NOT linearizable; visualisation: %s", name, res.Ops, res.Unknown, res.Visualization)
	case porcupine.Unknown:
		t.Logf("%s: linearizability check of %d operations timed out after %v (no violation found)", name, res.Ops, res.Took)
	}
	return res
}
