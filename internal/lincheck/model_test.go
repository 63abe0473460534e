package lincheck

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/octostore/octostore/lockcore"
)

// op is a compact way to write one record: client, call and return in
// milliseconds from an arbitrary origin.
type op struct {
	client    int
	call, ret int64
	in        Input
	out       Output
}

var origin = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

func hist(ops ...op) History {
	var h History
	for _, o := range ops {
		h.Records = append(h.Records, Record{
			Client: o.client, Input: o.in, Output: o.out,
			Call:   origin.Add(time.Duration(o.call) * time.Millisecond),
			Return: origin.Add(time.Duration(o.ret) * time.Millisecond),
		})
	}
	h.End = origin.Add(time.Hour)
	return h
}

func acq(lock, lease string) Input {
	return Input{Kind: OpAcquire, Lock: lock, LeaseID: lease, TTL: time.Hour}
}
func renew(lock, lease string) Input {
	return Input{Kind: OpRenew, Lock: lock, LeaseID: lease, TTL: time.Hour}
}
func rel(lock, lease string) Input { return Input{Kind: OpRelease, Lock: lock, LeaseID: lease} }
func get(lock string) Input        { return Input{Kind: OpGet, Lock: lock} }

func acquired(lease string, tok int64) Output {
	return Output{Outcome: Acquired, LeaseID: lease, Token: tok}
}
func renewed(lease string, tok int64) Output {
	return Output{Outcome: Renewed, LeaseID: lease, Token: tok}
}
func heldBy(lease string) Output { return Output{Outcome: Held, HolderID: lockcore.HolderID(lease)} }
func getHeld(lease string, tok int64) Output {
	return Output{Outcome: Held, LeaseID: lease, HolderID: lockcore.HolderID(lease), Token: tok}
}

var (
	released   = Output{Outcome: Released}
	notCurrent = Output{Outcome: NotCurrent}
	free       = Output{Outcome: Free}
	unknown    = Output{Outcome: Unknown, Err: "lost"}
)

func TestModel(t *testing.T) {
	cases := []struct {
		name string
		h    History
		want porcupine.CheckResult
	}{
		{"sequential life of two leases", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
			op{1, 2, 3, acq("x", "b"), heldBy("a")},
			op{1, 4, 5, get("x"), getHeld("a", 1)},
			op{0, 6, 7, renew("x", "a"), renewed("a", 1)},
			op{1, 8, 9, renew("x", "b"), notCurrent},
			op{1, 10, 11, rel("x", "b"), notCurrent},
			op{0, 12, 13, rel("x", "a"), released},
			op{1, 14, 15, get("x"), free},
			op{1, 16, 17, acq("x", "b"), acquired("b", 5)},
			op{0, 18, 19, rel("x", "a"), notCurrent},
		), porcupine.Ok},
		{"two holders at once", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
			op{1, 2, 3, acq("x", "b"), acquired("b", 2)},
		), porcupine.Illegal},
		{"concurrent acquires, one wins", hist(
			op{0, 0, 10, acq("x", "a"), heldBy("b")},
			op{1, 1, 9, acq("x", "b"), acquired("b", 3)},
		), porcupine.Ok},
		{"fencing token repeated", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 4)},
			op{0, 2, 3, rel("x", "a"), released},
			op{1, 4, 5, acq("x", "b"), acquired("b", 4)},
		), porcupine.Illegal},
		{"fencing token going down", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 4)},
			op{0, 2, 3, rel("x", "a"), released},
			op{1, 4, 5, acq("x", "b"), acquired("b", 3)},
		), porcupine.Illegal},
		{"idempotent re-acquire keeps the token", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 4)},
			op{0, 2, 3, acq("x", "a"), acquired("a", 4)},
		), porcupine.Ok},
		{"re-acquire with a new token", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 4)},
			op{0, 2, 3, acq("x", "a"), acquired("a", 5)},
		), porcupine.Illegal},
		{"renew changes the token", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 4)},
			op{0, 2, 3, renew("x", "a"), renewed("a", 5)},
		), porcupine.Illegal},
		{"renew after acknowledged release", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 4)},
			op{0, 2, 3, rel("x", "a"), released},
			op{0, 4, 5, renew("x", "a"), renewed("a", 4)},
		), porcupine.Illegal},
		{"free while held", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 4)},
			op{1, 2, 3, get("x"), free},
		), porcupine.Illegal},
		{"held shows the wrong holder", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 4)},
			op{1, 2, 3, acq("x", "b"), heldBy("c")},
		), porcupine.Illegal},
		{"lost acquire that took effect", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 4)},
			op{0, 2, 3, rel("x", "a"), released},
			op{1, 4, 5, acq("x", "b"), unknown},
			op{2, 6, 7, get("x"), getHeld("b", 9)},
			op{2, 8, 9, acq("x", "c"), heldBy("b")},
			op{1, 10, 11, acq("x", "b"), acquired("b", 9)},
		), porcupine.Ok},
		{"lost acquire that did not take effect", hist(
			op{1, 4, 5, acq("x", "b"), unknown},
			op{2, 6, 7, acq("x", "c"), acquired("c", 2)},
		), porcupine.Ok},
		{"lost acquire revealed with a stale token", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 4)},
			op{0, 2, 3, rel("x", "a"), released},
			op{1, 4, 5, acq("x", "b"), unknown},
			op{2, 6, 7, get("x"), getHeld("b", 4)},
		), porcupine.Illegal},
		{"next token beats an unseen lost one", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 4)},
			op{0, 2, 3, rel("x", "a"), released},
			op{1, 4, 5, acq("x", "b"), unknown},
			op{1, 6, 7, rel("x", "b"), released},
			op{2, 8, 9, acq("x", "c"), acquired("c", 5)},
		), porcupine.Illegal},
		{"lost release that took effect", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 4)},
			op{0, 2, 3, rel("x", "a"), unknown},
			op{1, 4, 5, acq("x", "b"), acquired("b", 6)},
		), porcupine.Ok},
		{"lost renew changes nothing", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 4)},
			op{0, 2, 3, renew("x", "a"), unknown},
			op{1, 4, 5, acq("x", "b"), acquired("b", 6)},
		), porcupine.Illegal},
		{"locks are independent", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 4)},
			op{1, 2, 3, acq("y", "b"), acquired("b", 5)},
			op{1, 4, 5, get("y"), getHeld("b", 5)},
			op{0, 6, 7, get("x"), getHeld("a", 4)},
		), porcupine.Ok},
		{"a lease never seen on the other lock", hist(
			op{0, 0, 1, acq("x", "a"), acquired("a", 4)},
			op{1, 2, 3, get("y"), getHeld("a", 4)},
		), porcupine.Illegal},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := porcupine.CheckOperations(Model(), c.h.Operations()) // no timeout: exact
			want := c.want == porcupine.Ok
			if got != want {
				t.Fatalf("linearizable = %v, want %v", got, want)
			}
		})
	}
}

func TestCheckWritesVisualization(t *testing.T) {
	dir := t.TempDir()
	h := hist(
		op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
		op{1, 2, 3, acq("x", "b"), acquired("b", 2)},
	)
	res, err := Check(h, time.Minute, dir, "two holders/x")
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != porcupine.Illegal || res.Visualization == "" {
		t.Fatalf("result %+v, want Illegal with a visualisation", res)
	}
	b, err := os.ReadFile(res.Visualization)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "<html") || !strings.Contains(string(b), "acquire(x, b)") {
		t.Errorf("visualisation %s does not look like porcupine's HTML for this history", res.Visualization)
	}
	ok, err := Check(hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)}), time.Minute, dir, "fine")
	if err != nil || ok.Verdict != porcupine.Ok || ok.Visualization != "" {
		t.Fatalf("good history: %+v, %v", ok, err)
	}
}

func TestOperationsPutsUnknownAtTheEnd(t *testing.T) {
	h := hist(
		op{0, 0, 1, acq("x", "a"), unknown},
		op{1, 2, 3, get("x"), free},
	)
	ops := h.Operations()
	if ops[0].Return <= ops[1].Return {
		t.Fatalf("unknown op returns at %d, before the last answer at %d", ops[0].Return, ops[1].Return)
	}
	if ops[1].Call != 2*int64(time.Millisecond) {
		t.Fatalf("timestamps not relative to the first call: %d", ops[1].Call)
	}
}

func TestBoundedUnknown(t *testing.T) {
	h := hist(
		op{0, 0, 3, acq("x", "a"), unknown},
		op{1, 5, 6, get("x"), free},
		op{1, 7, 8, get("x"), getHeld("a", 1)},
	)
	if !porcupine.CheckOperations(Model(), h.Operations()) {
		t.Fatal("an unbounded lost acquire may take effect late, but the history was refused")
	}
	h.Records[0].Bounded = true
	if porcupine.CheckOperations(Model(), h.Operations()) {
		t.Fatal("a lost acquire bounded at 3 ms took effect after a read at 5 ms, and the history was accepted")
	}
}
