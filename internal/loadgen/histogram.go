package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// subBits is log2 of the number of linear sub-buckets per power of two: 64
// sub-buckets keep every recorded value within 1/64 (about 1.6%) of the
// bucket it lands in, in the manner of an HDR histogram.
const subBits = 6

const subCount = 1 << subBits

// Histogram records durations (nanoseconds, 0 to about 292 years) in
// log-linear buckets: values below 128 ns are exact; above that each power
// of two is split into 64 equal sub-buckets. It keeps the exact minimum,
// maximum and sum. The zero value is empty and ready to use. A Histogram is
// not safe for concurrent use: give each goroutine its own and Merge them.
type Histogram struct {
	counts [64 * subCount]uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

// bucketOf returns the bucket index of v >= 0: v itself below 128 (exact),
// else e*64 + m where m = v>>e is v's top seven bits (64..127).
func bucketOf(v int64) int {
	if v < 2*subCount {
		return int(v)
	}
	u := uint64(v)
	e := bits.Len64(u) - subBits - 1
	return e*subCount + int(u>>uint(e))
}

// bucketRange returns the smallest and largest values of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < 2*subCount {
		return int64(i), int64(i)
	}
	e := i/subCount - 1
	m := int64(i - e*subCount)
	lo = m << uint(e)
	return lo, lo + (int64(1) << uint(e)) - 1
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns how many values were recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest recorded value (0 when empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the mean of the recorded values (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the q-quantile (0 <= q <= 1) by the nearest-rank
// method: the smallest recorded value v such that at least ceil(q*n) values
// are <= v, reported as the midpoint of v's bucket clamped to the exact
// minimum and maximum. So it is exact below 128 ns and within 1/64 of the
// true order statistic above. It returns 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	q = math.Max(0, math.Min(1, q))
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// Summary condenses the histogram into the figures a report shows.
func (h *Histogram) Summary() Latency {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Latency{
		Count:  h.n,
		MeanMS: ms(h.Mean()),
		P50MS:  ms(h.Quantile(0.50)),
		P90MS:  ms(h.Quantile(0.90)),
		P99MS:  ms(h.Quantile(0.99)),
		MaxMS:  ms(h.Max()),
	}
}

// Latency is a latency distribution in milliseconds.
type Latency struct {
	Count  uint64  `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	MaxMS  float64 `json:"max_ms"`
}
