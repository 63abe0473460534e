package lincheck

import (
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestModelRefusesWrongAnswers: histories the model must refuse, each with
// a legal twin differing in the one answer that makes it illegal, so that
// a refusal cannot come from elsewhere in the history.
func TestModelRefusesWrongAnswers(t *testing.T) {
	cases := []struct {
		name      string
		good, bad History
	}{
		{"acquired names another lease",
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)}),
			hist(op{0, 0, 1, acq("x", "a"), acquired("b", 1)})},
		{"second holder shown the holder's token",
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
				op{1, 2, 3, acq("x", "b"), heldBy("a")}),
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
				op{1, 2, 3, acq("x", "b"), acquired("b", 1)})},
		{"holder told its own lease holds the lock",
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
				op{0, 2, 3, acq("x", "a"), acquired("a", 1)}),
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
				op{0, 2, 3, acq("x", "a"), heldBy("a")})},
		{"free lock answered held",
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)}),
			hist(op{0, 0, 1, acq("x", "a"), heldBy("b")})},
		{"lost acquire takes a held lock",
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
				op{1, 2, 3, acq("x", "b"), unknown},
				op{2, 4, 5, get("x"), getHeld("a", 1)}),
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
				op{1, 2, 3, acq("x", "b"), unknown},
				op{2, 4, 5, get("x"), getHeld("b", 2)})},
		{"renewed names another lease",
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
				op{0, 2, 3, renew("x", "a"), renewed("a", 1)}),
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
				op{0, 2, 3, renew("x", "a"), renewed("b", 1)})},
		{"holder's renew answered not current",
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
				op{1, 2, 3, renew("x", "b"), notCurrent}),
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
				op{0, 2, 3, renew("x", "a"), notCurrent})},
		{"non-holder's release answered released",
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
				op{1, 2, 3, rel("x", "b"), notCurrent}),
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
				op{1, 2, 3, rel("x", "b"), released})},
		{"holder's release answered not current",
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
				op{0, 2, 3, rel("x", "a"), released}),
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
				op{0, 2, 3, rel("x", "a"), notCurrent})},
		{"get shows another lease with the holder's token",
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
				op{1, 2, 3, get("x"), getHeld("a", 1)}),
			hist(op{0, 0, 1, acq("x", "a"), acquired("a", 1)},
				op{1, 2, 3, get("x"), getHeld("b", 1)})},
		// The token of a lost acquire, once a read has shown it, is a floor
		// for every later lease.
		{"token learned from a read is a floor",
			hist(op{1, 4, 5, acq("x", "b"), unknown},
				op{2, 6, 7, get("x"), getHeld("b", 9)},
				op{1, 8, 9, rel("x", "b"), released},
				op{2, 10, 11, acq("x", "c"), acquired("c", 10)}),
			hist(op{1, 4, 5, acq("x", "b"), unknown},
				op{2, 6, 7, get("x"), getHeld("b", 9)},
				op{1, 8, 9, rel("x", "b"), released},
				op{2, 10, 11, acq("x", "c"), acquired("c", 5)})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !porcupine.CheckOperations(Model(), c.good.Operations()) {
				t.Fatal("the legal twin was refused")
			}
			if porcupine.CheckOperations(Model(), c.bad.Operations()) {
				t.Fatal("an impossible answer was accepted")
			}
		})
	}
}

// TestModelKeepsDistinctStates: the states a lost release and a lost
// re-acquire lead to differ only in the token; the model must keep both
// (a model that merged states by holder alone refused this history).
func TestModelKeepsDistinctStates(t *testing.T) {
	h := hist(
		op{0, 0, 1, acq("x", "b"), unknown},
		op{1, 2, 3, acq("x", "b"), acquired("b", 1)},
		op{3, 4, 5, rel("x", "b"), unknown},
		op{2, 6, 7, get("x"), getHeld("b", 3)},
	)
	if !porcupine.CheckOperations(Model(), h.Operations()) {
		t.Fatal("b released (lost) and re-acquired (lost) with token 3 was refused")
	}
	h.Records[3].Output = getHeld("b", 1)
	if !porcupine.CheckOperations(Model(), h.Operations()) {
		t.Fatal("b still holding token 1 was refused")
	}
}
