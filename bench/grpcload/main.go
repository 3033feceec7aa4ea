// Command grpcload is the gRPC server and load generator of the bench
// harness's grpc section: unary calls to grpc-go's own health service
// (grpc.health.v1.Health/Check), which ships with grpc-go, so no generated
// code of our own is needed.
//
//	grpcload serve                        serve on 127.0.0.1:0; prints "listening on ADDR"
//	grpcload load -addr ADDR -workers N   on each stdin line "run DURATION FILE": N workers
//	                                      call Check back to back for DURATION, then
//	                                      FILE gets every call's latency and stdout a
//	                                      line "calls=N errors=E seconds=S"
//
// The load generator is closed loop (each worker sends its next call when
// the previous one is answered) over one connection, as most gRPC clients
// share a ClientConn. It stays up between runs, so the bench harness can
// attach the tracer to it (tracer --pid, --exe) before a run and detach
// after, exactly as it does to the server. Latencies go to FILE as
// little-endian uint64 nanoseconds, in no particular order; the harness
// computes the percentiles.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "serve":
		err = serve()
	case len(os.Args) > 1 && os.Args[1] == "load":
		err = load(os.Args[2:])
	default:
		err = errors.New("usage: grpcload serve | grpcload load -addr ADDR -workers N")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpcload:", err)
		os.Exit(1)
	}
}

func serve() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer()) // "" is SERVING
	fmt.Printf("listening on %s\n", ln.Addr())
	return s.Serve(ln)
}

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	addr := fs.String("addr", "", "server address")
	workers := fs.Int("workers", 16, "concurrent callers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) != 3 || f[0] != "run" {
			return fmt.Errorf("stdin: want \"run DURATION FILE\", got %q", in.Text())
		}
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return fmt.Errorf("stdin: %w", err)
		}
		lat, errs, took := callFor(client, *workers, d)
		if err := writeLatencies(f[2], lat); err != nil {
			return err
		}
		fmt.Printf("calls=%d errors=%d seconds=%.6f\n", len(lat), errs, took.Seconds())
	}
	return in.Err()
}

// callFor runs workers callers for d and returns the latency of each
// successful call, the number of failed calls and the time the run took
// (from start until the last caller stopped).
func callFor(client healthpb.HealthClient, workers int, d time.Duration) ([]time.Duration, int, time.Duration) {
	var (
		mu   sync.Mutex
		all  []time.Duration
		errs int
		wg   sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<16)
			n := 0
			req := &healthpb.HealthCheckRequest{}
			for time.Now().Before(deadline) {
				t := time.Now()
				_, err := client.Check(context.Background(), req)
				if err != nil {
					n++
					continue
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, errs, time.Since(start)
}

func writeLatencies(path string, lat []time.Duration) error {
	b := make([]byte, 0, 8*len(lat))
	for _, l := range lat {
		b = binary.LittleEndian.AppendUint64(b, uint64(l))
	}
	return os.WriteFile(path, b, 0o644)
}
