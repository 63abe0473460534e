package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverEveryValue(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(v int64) {
		i := bucketOf(v)
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Fatalf("value %d: bucket %d covers [%d,%d]", v, i, lo, hi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d [%d,%d]: ends map to %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if v >= 128 && float64(hi-lo+1)/float64(lo) > 1.0/64+1e-12 {
			t.Fatalf("bucket %d [%d,%d] is wider than 1/64 of its start", i, lo, hi)
		}
		if i >= len(Histogram{}.counts) {
			t.Fatalf("value %d: bucket %d out of range", v, i)
		}
	}
	for v := int64(0); v < 5000; v++ {
		check(v)
	}
	for range 100000 {
		check(r.Int64N(math.MaxInt64))
		check(r.Int64N(int64(10 * time.Second)))
	}
	check(math.MaxInt64)
	// Consecutive buckets tile the line with no gap.
	for i := 1; i < bucketOf(math.MaxInt64); i++ {
		_, prevHi := bucketRange(i - 1)
		lo, _ := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, prevHi)
		}
	}
}

// exactQuantile is the nearest-rank quantile of sorted values.
func exactQuantile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func TestQuantilesAgainstSortedSamples(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 7, 100, 1001, 50000} {
		var h Histogram
		vals := make([]int64, n)
		for i := range vals {
			// Log-normal-ish latencies from ~20µs to ~1s.
			vals[i] = int64(math.Exp(r.NormFloat64()*1.5 + 12))
			h.Record(time.Duration(vals[i]))
		}
		slices.Sort(vals)
		if h.Count() != uint64(n) {
			t.Fatalf("n=%d: Count %d", n, h.Count())
		}
		if got := int64(h.Max()); got != vals[n-1] {
			t.Fatalf("n=%d: Max %d, want %d", n, got, vals[n-1])
		}
		for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
			want := exactQuantile(vals, q)
			got := int64(h.Quantile(q))
			if math.Abs(float64(got-want)) > float64(want)/64+1 {
				t.Errorf("n=%d q=%v: got %d, exact %d (more than 1/64 off)", n, q, got, want)
			}
		}
	}
}

func TestQuantileExactForSmallValues(t *testing.T) {
	var h Histogram
	for v := 1; v <= 100; v++ {
		h.Record(time.Duration(v))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50}, {0.9, 90}, {0.99, 99}, {0.991, 100}, {1, 100}, {0.001, 1}} {
		if got := h.Quantile(c.q); got != c.want {
			t.Errorf("Quantile(%v) = %d, want %d", c.q, got, c.want)
		}
	}
	if got := h.Mean(); got != 50 { // 50.5 truncated
		t.Errorf("Mean = %d, want 50", got)
	}
}

func TestMergeEqualsRecordingEverything(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var a, b, all Histogram
	for i := range 10000 {
		d := time.Duration(r.Int64N(int64(50 * time.Millisecond)))
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
		all.Record(d)
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{})
	if m.Count() != all.Count() || m.Max() != all.Max() || m.min != all.min || m.counts != all.counts {
		t.Fatalf("merged histogram differs from one that recorded everything")
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		if m.Quantile(q) != all.Quantile(q) {
			t.Errorf("q=%v: merged %v, all %v", q, m.Quantile(q), all.Quantile(q))
		}
	}
}

func TestEmptyAndNegative(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Mean() != 0 || h.Summary() != (Latency{}) {
		t.Fatalf("empty histogram: %+v", h.Summary())
	}
	h.Record(-5)
	if h.Count() != 1 || h.Quantile(1) != 0 {
		t.Fatalf("negative duration: count %d, max quantile %v", h.Count(), h.Quantile(1))
	}
	h.Record(3 * time.Millisecond)
	s := h.Summary()
	if s.Count != 2 || s.MaxMS != 3 || s.P50MS != 0 || s.P99MS < 2.95 || s.P99MS > 3 {
		t.Fatalf("summary %+v", s)
	}
}
