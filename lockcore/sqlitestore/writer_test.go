package sqlitestore

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestFreesFirstKeepsOrder checks freesFirst on every mix of releases and
// other ops up to 10 ops, and on random batches of up to 256: the releases
// come first, and each group keeps its queue order.
func TestFreesFirstKeepsOrder(t *testing.T) {
	check := func(frees []bool) {
		t.Helper()
		batch := make([]*op, len(frees))
		var want []int // queue positions: the releases', then the others'
		for i, f := range frees {
			batch[i] = &op{frees: f, clean: i%2 == 0}
			if f {
				want = append(want, i)
			}
		}
		for i, f := range frees {
			if !f {
				want = append(want, i)
			}
		}
		orig := slices.Clone(batch)
		freesFirst(batch)
		got := make([]int, len(batch))
		for i, o := range batch {
			got[i] = slices.Index(orig, o)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("freesFirst of %v: queue positions %v, want %v", frees, got, want)
		}
	}
	for n := range 11 {
		for mask := range 1 << n {
			frees := make([]bool, n)
			for i := range frees {
				frees[i] = mask&(1<<i) != 0
			}
			check(frees)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		frees := make([]bool, 1+r.IntN(256))
		for i := range frees {
			frees[i] = r.IntN(4) == 0
		}
		check(frees)
	}
}
