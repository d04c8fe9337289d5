// Package bench measures libmtlspop against its peers in the same run. It is a module of its
// own so that the core never depends on the peers it is compared with (MSAL Go here).
//
// ./build.sh bench runs these benchmarks beside the core's own, then cmd/report prints the
// table and writes build/bench/results.json.
package bench
