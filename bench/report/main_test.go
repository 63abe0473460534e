package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/octostore/octostore/internal/loadgen"
)

func line(t *testing.T, label string, clients int, contended bool, cps, p50 float64) string {
	t.Helper()
	b, err := json.Marshal(loadgen.Result{Label: label, Target: "x", Clients: clients, Contended: contended,
		CyclesPerSec: cps, Acquire: loadgen.Latency{P50MS: p50, P99MS: p50 * 2}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func TestMediansAndChecks(t *testing.T) {
	in := line(t, "etcd|e", 32, false, 100, 2) +
		line(t, "octostore-redis|r", 32, false, 500, 1) +
		line(t, "etcd|e", 32, false, 300, 2) +
		line(t, "octostore-redis|r", 32, false, 200, 1) +
		line(t, "etcd|e", 32, false, 200, 2) +
		line(t, "octostore-redis|r", 32, false, 900, 1) +
		line(t, "redis-lua|l", 32, false, 1000, 0.1)
	rows, err := read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].name != "etcd" || rows[1].name != "octostore-redis" || rows[2].name != "redis-lua" {
		t.Fatalf("rows %+v", rows)
	}
	if rows[0].r.CyclesPerSec != 200 || rows[1].r.CyclesPerSec != 500 || len(rows[0].rounds) != 3 || rows[0].rounds[0] != 100 {
		t.Fatalf("medians: etcd %v %v, octostore %v", rows[0].r.CyclesPerSec, rows[0].rounds, rows[1].r.CyclesPerSec)
	}
	var md, dat bytes.Buffer
	if err := writeMarkdown(&md, rows); err != nil {
		t.Fatal(err)
	}
	out := md.String()
	for _, want := range []string{
		"| etcd | e | 32 | distinct | 200 | 100, 300, 200 |",
		"≥ 3× etcd cycles/s | 500 / 200 = 2.50× | **no** |",
		"≥ 25% of raw Redis-Lua cycles/s | 500 / 1000 = 0.50× | yes |",
		"acquire p99 < 5 ms | 2.000 ms | yes |",
		"SQLite mode, 32 clients, distinct: ≥ 2.5× etcd cycles/s | not measured |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Ceiling") {
		t.Errorf("a ceiling line without a floor row:\n%s", out)
	}
	if err := writeDat(&dat, rows); err != nil {
		t.Fatal(err)
	}
	if got := dat.String(); got != "config\tetcd\toctostore-redis\tredis-lua\n\"32 distinct\"\t200.0\t500.0\t1000.0\n" {
		t.Errorf("dat:\n%q", got)
	}
	if _, err := read(strings.NewReader("\n")); err == nil {
		t.Error("empty input accepted")
	}
	if _, err := read(strings.NewReader("{nope\n")); err == nil {
		t.Error("malformed line accepted")
	}
}

// With a bench/floor row, the report gives each 32-client distinct
// target's share of it, the share 3× etcd would be, and the floor's own
// 32-client acquire p99 (not its 1-client one).
func TestCeiling(t *testing.T) {
	in := line(t, "etcd|e", 32, false, 250, 2) +
		line(t, "nethttp-floor|f", 32, false, 1000, 1) +
		line(t, "nethttp-floor|f", 1, false, 50, 1) +
		line(t, "octostore-redis|r", 32, false, 600, 1) +
		line(t, "octostore-redis|r", 32, true, 90, 1)
	rows, err := read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	if err := writeMarkdown(&md, rows); err != nil {
		t.Fatal(err)
	}
	want := "ran 1000 cycles/s at 32 clients on distinct names. Share of it reached, same load: etcd 25%; octostore-redis 60%; 3× etcd would be 75%. Its acquire p99 in that run was 2.000 ms"
	if !strings.Contains(md.String(), want) {
		t.Errorf("markdown lacks %q:\n%s", want, md.String())
	}
}

// TestRunWritesBothFiles runs the command's file-to-file path: a results
// file in, the Markdown table and the gnuplot data out.
func TestRunWritesBothFiles(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "results.jsonl")
	if err := os.WriteFile(in, []byte(line(t, "etcd|e", 1, false, 300, 1.4)+line(t, "octostore-sqlite|s", 1, false, 350, 1.1)), 0o644); err != nil {
		t.Fatal(err)
	}
	md, dat := filepath.Join(dir, "results.md"), filepath.Join(dir, "cycles.dat")
	if err := run(in, md, dat); err != nil {
		t.Fatal(err)
	}
	table, err := os.ReadFile(md)
	if err != nil || !strings.Contains(string(table), "| octostore-sqlite | s | 1 | distinct | 350 |") {
		t.Fatalf("results.md (%v):\n%s", err, table)
	}
	data, err := os.ReadFile(dat)
	if err != nil || !strings.HasPrefix(string(data), "config\tetcd\toctostore-sqlite\n") {
		t.Fatalf("cycles.dat (%v):\n%s", err, data)
	}
	if err := run(filepath.Join(dir, "missing.jsonl"), md, dat); err == nil {
		t.Fatal("a missing results file was accepted")
	}
}
