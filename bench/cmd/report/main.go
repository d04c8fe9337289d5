// Command report turns the outputs of ./build.sh bench into a table and
// build/bench/results.json.
//
//	report DIR
//
// It reads every *.txt file in DIR as `go test -bench` output and every *.jsonl file as JSON
// lines {"name","value","unit"[,"peer","peer_value"]} written by the other surfaces' benchmarks.
// Repeated runs of a benchmark (-count) are reduced to their median. A result with a peer
// carries ratio = peer_value / value: how many times faster (lower is better for every unit
// measured here) libmtlspop was than the peer in the same run.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Result is one entry of results.json.
type Result struct {
	Name      string   `json:"name"`
	Value     float64  `json:"value"`
	Unit      string   `json:"unit"`
	Peer      string   `json:"peer,omitempty"`
	PeerValue *float64 `json:"peer_value,omitempty"`
	Ratio     *float64 `json:"ratio,omitempty"`
}

// samples holds every value seen, by benchmark name (without the -N suffix) and unit.
type samples map[string]map[string][]float64

func (s samples) add(bench, unit string, v float64) {
	if s[bench] == nil {
		s[bench] = map[string][]float64{}
	}
	s[bench][unit] = append(s[bench][unit], v)
}

func (s samples) median(bench, unit string) (float64, bool) {
	vs := slices.Clone(s[bench][unit])
	if len(vs) == 0 {
		return 0, false
	}
	sort.Float64s(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2], true
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2, true
}

// parseBench reads `go test -bench` lines: "BenchmarkName-2  N  v unit  v unit ...".
func parseBench(path string, s samples) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := fields[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			s.add(name, fields[i+1], v)
		}
	}
	return sc.Err()
}

// metric maps a benchmark measurement to a stable result name.
type metric struct {
	name, bench, unit string
	scale             float64 // multiply the benchmark's value (e.g. ns → ms)
	outUnit           string
	peerName          string // peer result name, measured by peerBench
	peerBench         string
}

var metrics = []metric{
	{name: "go_cache_hit_ns", bench: "BenchmarkHit", unit: "ns/op", outUnit: "ns"},
	{name: "go_cache_hit_allocs", bench: "BenchmarkHit", unit: "allocs/op", outUnit: "allocs"},
	{name: "go_cache_hit_parallel_ns", bench: "BenchmarkHitParallel", unit: "ns/op", outUnit: "ns"},
	{name: "go_cache_hit_10_entries_ns", bench: "BenchmarkHitEntries/10", unit: "ns/op", outUnit: "ns"},
	{name: "go_cache_hit_10000_entries_ns", bench: "BenchmarkHitEntries/10000", unit: "ns/op", outUnit: "ns"},
	{name: "go_cache_hit_1000000_entries_ns", bench: "BenchmarkHitEntries/1000000", unit: "ns/op", outUnit: "ns"},
	{name: "go_cache_hit_by_key_ns", bench: "BenchmarkHitByKey", unit: "ns/op", outUnit: "ns"},
	{name: "go_mi_cache_hit_ns", bench: "BenchmarkMtlspopCacheHit", unit: "ns/op", outUnit: "ns",
		peerName: "msal_go_cache_hit_ns", peerBench: "BenchmarkMSALGoCacheHit"},
	{name: "go_mi_cache_hit_parallel_ns", bench: "BenchmarkMtlspopCacheHitParallel", unit: "ns/op", outUnit: "ns",
		peerName: "msal_go_cache_hit_parallel_ns", peerBench: "BenchmarkMSALGoCacheHitParallel"},
	{name: "go_mi_cache_hit_allocs", bench: "BenchmarkMtlspopCacheHit", unit: "allocs/op", outUnit: "allocs",
		peerName: "msal_go_cache_hit_allocs", peerBench: "BenchmarkMSALGoCacheHit"},
	{name: "go_mi_pop_cache_hit_ns", bench: "BenchmarkMtlspopPoPCacheHit", unit: "ns/op", outUnit: "ns"},
	{name: "coalesced_requests_per_stage", bench: "BenchmarkColdCoalesced", unit: "requests/stage", outUnit: "requests"},
	{name: "fleet_peak_to_mean", bench: "BenchmarkFleet", unit: "peak/mean", outUnit: "ratio"},
	{name: "fleet_peak_requests_per_interval", bench: "BenchmarkFleet", unit: "peak_requests/interval", outUnit: "requests"},
	{name: "fleet_mean_requests_per_interval", bench: "BenchmarkFleet", unit: "mean_requests/interval", outUnit: "requests"},
	{name: "go_mi_tpm_pop_cache_hit_ns", bench: "BenchmarkTPMPoPCacheHit", unit: "ns/op", outUnit: "ns"},
	{name: "tpm_commands_per_cache_hit", bench: "BenchmarkTPMPoPCacheHit", unit: "tpm_commands/op", outUnit: "commands"},
	{name: "tpm_signs_per_new_connection", bench: "BenchmarkTPMPoPCacheHit", unit: "tpm_signs/new_connection", outUnit: "signs"},
	{name: "cold_pop_acquire_ms", bench: "BenchmarkColdPoPAcquire", unit: "ns/op", scale: 1e-6, outUnit: "ms"},
	{name: "warm_cert_pop_acquire_ms", bench: "BenchmarkWarmCertPoPAcquire", unit: "ns/op", scale: 1e-6, outUnit: "ms"},
}

// targets are the issues' goals, printed beside the results.
var targets = map[string]struct {
	text string
	met  func(r Result) bool
}{
	"go_cache_hit_ns":               {"≤ 25 ns", atMost(25)},
	"go_cache_hit_allocs":           {"0", atMost(0)},
	"go_cache_hit_parallel_speedup": {"≥ 1.6×", atLeast(1.6)},
	"go_mi_cache_hit_ns":            {"≥ 20× MSAL Go", ratioAtLeast(20)},
	"coalesced_requests_per_stage":  {"1", atMost(1)},
	"tpm_commands_per_cache_hit":    {"0", atMost(0)},
	"tpm_signs_per_new_connection":  {"1", atMost(1)},
	"fleet_peak_to_mean":            {"≤ 2", atMost(2)},
	"capi_cache_hit_ns":             {"≤ 250 ns", atMost(250)},
	"python_cache_hit_ns":           {"≤ 1.5 µs", atMost(1500)},
	"node_cache_hit_ns":             {"≤ 1 µs, ≥ 10× msal-node", func(r Result) bool { return atMost(1000)(r) && ratioAtLeast(10)(r) }},
}

func atMost(v float64) func(Result) bool  { return func(r Result) bool { return r.Value <= v } }
func atLeast(v float64) func(Result) bool { return func(r Result) bool { return r.Value >= v } }
func ratioAtLeast(v float64) func(Result) bool {
	return func(r Result) bool { return r.Ratio != nil && *r.Ratio >= v }
}

func ptr(v float64) *float64 { return &v }

func round(v float64) float64 {
	if v == 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return v
	}
	digits := 3 - int(math.Floor(math.Log10(math.Abs(v))))
	p := math.Pow(10, float64(max(digits, 0)))
	return math.Round(v*p) / p
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: report DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	s := samples{}
	txts, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	for _, p := range txts {
		if err := parseBench(p, s); err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
	}
	var results []Result
	for _, m := range metrics {
		v, ok := s.median(m.bench, m.unit)
		if !ok {
			continue
		}
		scale := m.scale
		if scale == 0 {
			scale = 1
		}
		r := Result{Name: m.name, Value: round(v * scale), Unit: m.outUnit}
		if m.peerBench != "" {
			if pv, ok := s.median(m.peerBench, m.unit); ok {
				r.Peer, r.PeerValue = m.peerName, ptr(round(pv*scale))
				if v > 0 {
					r.Ratio = ptr(round(pv / v))
				}
			}
		}
		results = append(results, r)
	}
	serial, ok1 := s.median("BenchmarkHit", "ns/op")
	parallel, ok2 := s.median("BenchmarkHitParallel", "ns/op")
	if ok1 && ok2 && parallel > 0 {
		results = append(results, Result{Name: "go_cache_hit_parallel_speedup", Value: round(serial / parallel), Unit: "x"})
	}
	jsonls, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	for _, p := range jsonls {
		results = append(results, readJSONL(p)...)
	}
	out, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(out, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	printTable(results)
}

// readJSONL keeps the lines that are results; other output of a surface's script is ignored.
func readJSONL(path string) []Result {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []Result
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Result
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Name == "" || r.Unit == "" {
			continue
		}
		r.Value = round(r.Value)
		if r.PeerValue != nil && r.Ratio == nil && r.Value > 0 {
			r.Ratio = ptr(round(*r.PeerValue / r.Value))
		}
		out = append(out, r)
	}
	return out
}

func printTable(results []Result) {
	fmt.Printf("%-34s %12s %-8s %-30s %12s %8s  %s\n", "result", "value", "unit", "peer (same run)", "peer value", "ratio", "target")
	for _, r := range results {
		peer, pv, ratio := "", "", ""
		if r.Peer != "" {
			peer, pv = r.Peer, strconv.FormatFloat(*r.PeerValue, 'g', -1, 64)
		}
		if r.Ratio != nil {
			ratio = strconv.FormatFloat(*r.Ratio, 'g', -1, 64) + "×"
		}
		target := ""
		if t, ok := targets[r.Name]; ok {
			mark := "met"
			if !t.met(r) {
				mark = "MISSED"
			}
			target = t.text + " (" + mark + ")"
		}
		fmt.Printf("%-34s %12s %-8s %-30s %12s %8s  %s\n", r.Name, strconv.FormatFloat(r.Value, 'g', -1, 64), r.Unit, peer, pv, ratio, target)
	}
}
