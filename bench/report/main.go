// Command report turns the JSON lines that `octostore bench --json` wrote
// during `make bench-compare` into a Markdown table, a check of the
// performance targets of issue 8, and a gnuplot data file for the plot.
//
//	go run ./bench/report -in results.jsonl -md results.md -dat cycles.dat
//
// Each input line is one loadgen.Result whose Label is
// "<target-label>|<persistence note>". Several runs of one configuration
// (rounds) are folded into the median run by cycles/s. The order of first
// appearance of target labels is kept in the table and the plot.
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/octostore/octostore/internal/loadgen"
)

func main() {
	in := flag.String("in", "", "JSON lines from octostore bench --json")
	md := flag.String("md", "", "Markdown output (table and target checks)")
	dat := flag.String("dat", "", "gnuplot data output (cycles/s per configuration)")
	flag.Parse()
	if *in == "" || *md == "" || *dat == "" {
		fmt.Fprintln(os.Stderr, "usage: report -in results.jsonl -md results.md -dat cycles.dat")
		os.Exit(2)
	}
	if err := run(*in, *md, *dat); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(in, md, dat string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	rs, err := read(f)
	if err != nil {
		return err
	}
	mf, err := os.Create(md)
	if err != nil {
		return err
	}
	if err := writeMarkdown(mf, rs); err != nil {
		mf.Close()
		return err
	}
	if err := mf.Close(); err != nil {
		return err
	}
	df, err := os.Create(dat)
	if err != nil {
		return err
	}
	if err := writeDat(df, rs); err != nil {
		df.Close()
		return err
	}
	return df.Close()
}

// row is one result with its label split; rounds lists the cycles/s of
// every run of the same configuration when there were several (r is then
// the median run).
type row struct {
	name, note string
	r          loadgen.Result
	rounds     []float64
}

func read(r io.Reader) ([]row, error) {
	var rows []row
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var res loadgen.Result
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		name, note, _ := strings.Cut(res.Label, "|")
		if name == "" {
			name = res.Target
		}
		rows = append(rows, row{name: name, note: note, r: res})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, errors.New("no results")
	}
	return medians(rows), nil
}

// medians folds the runs of one configuration (target label, clients,
// names) into its median run by cycles/s (the lower middle of an even
// count), keeping the order of first appearance.
func medians(rows []row) []row {
	type key struct {
		name      string
		clients   int
		contended bool
	}
	groups := map[key][]row{}
	var order []key
	for _, x := range rows {
		k := key{x.name, x.r.Clients, x.r.Contended}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], x)
	}
	out := make([]row, 0, len(order))
	for _, k := range order {
		g := groups[k]
		rounds := make([]float64, len(g))
		for i, x := range g {
			rounds[i] = x.r.CyclesPerSec
		}
		sorted := slices.Clone(g)
		slices.SortStableFunc(sorted, func(a, b row) int { return cmp.Compare(a.r.CyclesPerSec, b.r.CyclesPerSec) })
		m := sorted[(len(sorted)-1)/2]
		m.rounds = rounds
		out = append(out, m)
	}
	return out
}

func mode(contended bool) string {
	if contended {
		return "contended"
	}
	return "distinct"
}

func writeMarkdown(w io.Writer, rows []row) error {
	fmt.Fprintln(w, "| target | store persistence | clients | names | cycles/s (median run) | cycles/s of each round | attempts/s | acquire p50 ms | p90 | p99 | max | release p50 ms | p99 | wait p99 ms | errors |")
	fmt.Fprintln(w, "|---|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, x := range rows {
		r := x.r
		rounds := make([]string, len(x.rounds))
		for i, c := range x.rounds {
			rounds[i] = fmt.Sprintf("%.0f", c)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %.0f | %s | %.0f | %.3f | %.3f | %.3f | %.1f | %.3f | %.3f | %.3f | %d |\n",
			x.name, x.note, r.Clients, mode(r.Contended), r.CyclesPerSec, strings.Join(rounds, ", "), r.AttemptsPerSec,
			r.Acquire.P50MS, r.Acquire.P90MS, r.Acquire.P99MS, r.Acquire.MaxMS,
			r.Release.P50MS, r.Release.P99MS, r.Wait.P99MS, r.Errors)
	}
	fmt.Fprintln(w)
	if err := writeChecks(w, rows); err != nil {
		return err
	}
	return writeCeiling(w, rows)
}

// floorLabel is the label of bench/floor, the net/http server that does no
// work, in compare.sh.
const floorLabel = "nethttp-floor"

// writeCeiling states, when the run measured bench/floor at 32 clients on
// distinct names, what share of that ceiling each target reached and what
// share OctoStore would need for 3× etcd, and the floor's own acquire p99
// (the tail any net/http server gets here under the same load). Without a
// floor row it writes nothing.
func writeCeiling(w io.Writer, rows []row) error {
	f, ok := find(rows, floorLabel, 32, false)
	if !ok || f.CyclesPerSec <= 0 {
		return nil
	}
	fmt.Fprintf(w, "Ceiling: %s (bench/floor: net/http with the server's limits, fixed answers, no store, no log) "+
		"ran %.0f cycles/s at 32 clients on distinct names. Share of it reached, same load:", floorLabel, f.CyclesPerSec)
	for _, x := range rows {
		if x.name != floorLabel && x.r.Clients == 32 && !x.r.Contended {
			fmt.Fprintf(w, " %s %.0f%%;", x.name, 100*x.r.CyclesPerSec/f.CyclesPerSec)
		}
	}
	if e, ok := find(rows, "etcd", 32, false); ok {
		fmt.Fprintf(w, " 3× etcd would be %.0f%%.", 300*e.CyclesPerSec/f.CyclesPerSec)
	}
	fmt.Fprintf(w, " Its acquire p99 in that run was %.3f ms (issue 8's target for OctoStore on Redis: under 5 ms).",
		f.Acquire.P99MS)
	_, err := fmt.Fprint(w, "\n\n")
	return err
}

// find returns the result of target label name at clients and mode.
func find(rows []row, name string, clients int, contended bool) (loadgen.Result, bool) {
	for _, x := range rows {
		if x.name == name && x.r.Clients == clients && x.r.Contended == contended {
			return x.r, true
		}
	}
	return loadgen.Result{}, false
}

// writeChecks compares the figures with the targets of issue 8.
func writeChecks(w io.Writer, rows []row) error {
	fmt.Fprintln(w, "| target (issue 8) | measured | met |")
	fmt.Fprintln(w, "|---|---|---|")
	check := func(what string, ok bool, measured string, found bool) {
		verdict := "yes"
		if !found {
			measured, verdict = "not measured", "—"
		} else if !ok {
			verdict = "**no**"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", what, measured, verdict)
	}
	ratio := func(a, b string, clients int, contended bool, want float64, what string) {
		ra, ok1 := find(rows, a, clients, contended)
		rb, ok2 := find(rows, b, clients, contended)
		q := 0.0
		if rb.CyclesPerSec > 0 {
			q = ra.CyclesPerSec / rb.CyclesPerSec
		}
		check(what, q >= want, fmt.Sprintf("%.0f / %.0f = %.2f×", ra.CyclesPerSec, rb.CyclesPerSec, q), ok1 && ok2)
	}
	ratio("octostore-redis", "etcd", 32, false, 3, "Redis mode, 32 clients, distinct: ≥ 3× etcd cycles/s")
	ratio("octostore-redis", "redis-lua", 32, false, 0.25, "Redis mode, 32 clients, distinct: ≥ 25% of raw Redis-Lua cycles/s")
	r, ok := find(rows, "octostore-redis", 32, false)
	check("Redis mode, 32 clients, distinct: acquire p99 < 5 ms", r.Acquire.P99MS < 5, fmt.Sprintf("%.3f ms", r.Acquire.P99MS), ok)
	ratio("octostore-redis-always", "etcd", 32, false, 3, "Redis mode (appendfsync always), 32 clients, distinct: ≥ 3× etcd")
	ratio("octostore-sqlite", "etcd", 32, false, 2.5, "SQLite mode, 32 clients, distinct: ≥ 2.5× etcd cycles/s")
	ratio("octostore-sqlite", "etcd", 32, true, 2.5, "SQLite mode, 32 clients, contended: ≥ 2.5× etcd cycles/s")
	for _, name := range []string{"octostore-redis", "octostore-sqlite"} {
		r, ok1 := find(rows, name, 1, false)
		e, ok2 := find(rows, "etcd", 1, false)
		check(name+", 1 client: acquire p50 ≤ half of etcd's", r.Acquire.P50MS <= e.Acquire.P50MS/2,
			fmt.Sprintf("%.3f ms vs etcd %.3f ms", r.Acquire.P50MS, e.Acquire.P50MS), ok1 && ok2)
	}
	_, err := fmt.Fprintln(w)
	return err
}

// writeDat writes one line per configuration (clients × names, in order
// of first appearance) with the cycles/s of each target label, columns in
// order of first appearance.
func writeDat(w io.Writer, rows []row) error {
	var names []string
	seen := map[string]bool{}
	for _, x := range rows {
		if !seen[x.name] {
			seen[x.name] = true
			names = append(names, x.name)
		}
	}
	fmt.Fprintf(w, "config")
	for _, n := range names {
		fmt.Fprintf(w, "\t%s", n)
	}
	fmt.Fprintln(w)
	type config struct {
		clients   int
		contended bool
	}
	var configs []config
	seenC := map[config]bool{}
	for _, x := range rows {
		c := config{x.r.Clients, x.r.Contended}
		if !seenC[c] {
			seenC[c] = true
			configs = append(configs, c)
		}
	}
	for _, c := range configs {
		fmt.Fprintf(w, "\"%d %s\"", c.clients, mode(c.contended))
		for _, n := range names {
			r, ok := find(rows, n, c.clients, c.contended)
			if ok {
				fmt.Fprintf(w, "\t%.1f", r.CyclesPerSec)
			} else {
				fmt.Fprintf(w, "\t0")
			}
		}
		fmt.Fprintln(w)
	}
	return nil
}
