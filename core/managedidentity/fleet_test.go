package managedidentity_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/cache"
	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/managedidentity"
)

// BenchmarkFleet simulates a fleet of 10,000 clients against one identity endpoint over three
// token lifetimes on a compressed clock, and reports the endpoint's busiest and average
// 10-minute interval. The clients start spread over the first lifetime (a fleet that scaled out
// over a day); each calls AcquireToken once a simulated minute. What it measures is the cache's
// refresh behaviour: one background refresh per client per refresh point, jittered, with no
// convoys — a ratio near 1 means the endpoint sees a steady load. Bearer tokens (IMDS v1) are
// used so the run is not dominated by 10,000 RSA key generations; the refresh machinery is the
// same for PoP tokens. Run it with -benchtime 1x.
func BenchmarkFleet(b *testing.B) {
	const (
		clients  = 10_000
		lifetime = 24 * time.Hour
		tick     = time.Minute
		interval = 10 * time.Minute
		workers  = 8
	)
	for n := 0; n < b.N; n++ {
		emu := startEmulator(b, emulator.Config{TokenLifetime: lifetime})
		clock := cache.NewManualClock(time.Now())
		env := emu.Env()
		shared := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers * 2}}
		fleet := make([]*managedidentity.Client, clients)
		starts := make([]time.Time, clients)
		for i := range fleet {
			c, err := managedidentity.New(managedidentity.SystemAssigned(),
				managedidentity.WithEnv(func(k string) string { return env[k] }),
				managedidentity.WithHTTPClient(shared), managedidentity.WithClock(clock.Time))
			if err != nil {
				b.Fatal(err)
			}
			fleet[i] = c
			starts[i] = clock.Time().Add(time.Duration(i) * lifetime / clients)
		}
		resource := emu.Config().ResourceID
		begin := clock.Time()
		var counts []int
		last := 0
		for t := time.Duration(0); t < 3*lifetime; t += tick {
			now := clock.Time()
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < clients; i += workers {
						if !starts[i].After(now) {
							if _, err := fleet[i].AcquireToken(context.Background(), resource); err != nil {
								b.Error(err)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			for _, c := range fleet { // let the background refreshes this tick started finish
				for c.Stats().InFlight > 0 {
					time.Sleep(100 * time.Microsecond)
				}
			}
			clock.Advance(tick)
			if elapsed := clock.Time().Sub(begin); elapsed%interval == 0 {
				total := emu.Requests(emulator.EndpointIMDSToken)
				counts = append(counts, total-last)
				last = total
			}
		}
		for _, c := range fleet {
			_ = c.Close()
		}
		peak, sum := 0, 0
		for _, c := range counts {
			sum += c
			peak = max(peak, c)
		}
		mean := float64(sum) / float64(len(counts))
		b.ReportMetric(float64(peak)/mean, "peak/mean")
		b.ReportMetric(float64(peak), "peak_requests/interval")
		b.ReportMetric(mean, "mean_requests/interval")
		b.ReportMetric(float64(sum), "requests")
	}
}
