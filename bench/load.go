package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	Requests   uint64  // completed requests
	PerSecond  float64 // Requests/sec
	Non2xx     uint64  // "Non-2xx or 3xx responses"
	SockErrors uint64  // connect+read+write+timeout
}

// runWrk drives url at saturation for d with wrk (closed loop: each
// connection sends its next request when the previous one is answered).
func runWrk(ctx context.Context, url string, threads, conns int, d time.Duration) (wrkResult, error) {
	cmd := exec.CommandContext(ctx, "wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second)), url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w: %s", url, err, out)
	}
	return parseWrk(string(out))
}

var (
	wrkRequests   = regexp.MustCompile(`(\d+) requests in `)
	wrkPerSecond  = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkNon2xx     = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSockErrors = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkRequests.FindStringSubmatch(out)
	p := wrkPerSecond.FindStringSubmatch(out)
	if m == nil || p == nil {
		return r, fmt.Errorf("unexpected wrk output: %s", out)
	}
	r.Requests, _ = strconv.ParseUint(m[1], 10, 64)
	r.PerSecond, _ = strconv.ParseFloat(p[1], 64)
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseUint(m[1], 10, 64)
	}
	if m := wrkSockErrors.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseUint(s, 10, 64)
			r.SockErrors += n
		}
	}
	return r, nil
}

// openLoopResult is what one fixed-rate run measured.
type openLoopResult struct {
	Sent      int
	Errors    int             // transport errors and non-2xx answers
	Latencies []time.Duration // of the successful requests, from when each was sent
	// Lags are how late each request was sent after its scheduled time:
	// the generator's own timer granularity and scheduling delays.
	Lags []time.Duration
}

// maxInFlight bounds the requests an open-loop run keeps outstanding: past
// it the target is hopelessly overloaded and further requests count as
// errors instead of piling up goroutines.
const maxInFlight = 4096

// openLoop sends GET url at a fixed rate for d, whatever the answers do
// (open loop, unlike wrk: each request has its own goroutine, so a slow
// answer delays no other request and there is no coordinated omission).
// It records each request's latency from when it was sent, and how late it
// was sent: requests go out on a 1 ms tick, and timers may be coarser.
func openLoop(ctx context.Context, url string, rate int, d time.Duration) openLoopResult {
	tr := &http.Transport{MaxIdleConns: maxInFlight, MaxIdleConnsPerHost: maxInFlight, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	var (
		mu       sync.Mutex
		res      openLoopResult
		wg       sync.WaitGroup
		inFlight = make(chan struct{}, maxInFlight)
	)
	res.Latencies = make([]time.Duration, 0, int(float64(rate)*d.Seconds())+1)
	total := int(float64(rate) * d.Seconds())
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for res.Sent < total && ctx.Err() == nil {
		// Requests 0..due-1 are scheduled at or before now.
		due := min(total, int(time.Since(start).Seconds()*float64(rate))+1)
		for ; res.Sent < due; res.Sent++ {
			scheduled := start.Add(time.Duration(float64(res.Sent) / float64(rate) * float64(time.Second)))
			select {
			case inFlight <- struct{}{}:
			default:
				mu.Lock()
				res.Errors++
				mu.Unlock()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-inFlight }()
				sent := time.Now()
				ok := get(ctx, client, url)
				lat := time.Since(sent)
				mu.Lock()
				res.Lags = append(res.Lags, sent.Sub(scheduled))
				if ok {
					res.Latencies = append(res.Latencies, lat)
				} else {
					res.Errors++
				}
				mu.Unlock()
			}()
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	wg.Wait()
	return res
}

// get makes one request and reads the whole answer; it reports a 2xx.
func get(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}
