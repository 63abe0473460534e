package lincheck

import (
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Record is one operation of a history: who called, what, when, and what
// came back.
type Record struct {
	// Client is the zero-based client number.
	Client int
	Input  Input
	Output Output
	// Call is when the request was sent; Return when its answer arrived or
	// the client gave up (for Unknown outcomes).
	Call, Return time.Time
	// Bounded, for an Unknown outcome, says that Return is the latest
	// moment the operation can have taken effect (e.g. the server process
	// that could have received it is known to be dead by then); otherwise
	// an Unknown operation may take effect until the history's End.
	Bounded bool
}

// Recorder collects the records of concurrent clients. It is safe for
// concurrent use.
type Recorder struct {
	mu   sync.Mutex
	recs []Record
}

// Add appends one record.
func (r *Recorder) Add(rec Record) {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
}

// History returns what was recorded so far, with end as the moment after
// which no recorded operation can take effect any more (once every request
// has finished on the server side, e.g. after the server was shut down or
// every client was answered).
func (r *Recorder) History(end time.Time) History {
	r.mu.Lock()
	recs := append([]Record(nil), r.recs...)
	r.mu.Unlock()
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Call.Before(recs[j].Call) })
	return History{Records: recs, End: end}
}

// History is a finished set of records.
type History struct {
	Records []Record
	// End bounds the effect of operations whose answer was lost.
	End time.Time
}

// Unknown counts the records whose outcome is Unknown.
func (h History) Unknown() int {
	n := 0
	for _, r := range h.Records {
		if r.Output.Outcome == Unknown {
			n++
		}
	}
	return n
}

// Operations converts the history to porcupine operations, timestamps in
// nanoseconds since the first call. An Unknown operation returns at End
// (after every other operation), unless it is Bounded, so porcupine may
// place its effect anywhere from its call on, or, through the model,
// nowhere.
func (h History) Operations() []porcupine.Operation {
	if len(h.Records) == 0 {
		return nil
	}
	base := h.Records[0].Call
	for _, r := range h.Records {
		if r.Call.Before(base) {
			base = r.Call
		}
	}
	end := h.End
	ops := make([]porcupine.Operation, 0, len(h.Records))
	for _, r := range h.Records {
		if r.Return.After(end) {
			end = r.Return
		}
	}
	for _, r := range h.Records {
		ret := r.Return
		if r.Output.Outcome == Unknown && !r.Bounded {
			ret = end.Add(time.Nanosecond)
		}
		ops = append(ops, porcupine.Operation{
			ClientId: r.Client,
			Input:    r.Input,
			Call:     r.Call.Sub(base).Nanoseconds(),
			Output:   r.Output,
			Return:   ret.Sub(base).Nanoseconds(),
		})
	}
	return ops
}
