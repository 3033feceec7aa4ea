// Command otelapp is an HTTP client and an HTTP server instrumented with the
// OpenTelemetry Go SDK (otelhttp), for interoperability tests of the tracer:
// spans made by the SDK and by the tracer must form one trace.
//
//	otelapp client -url URL [-n N]   # N GETs, each inside its own SDK root span
//	otelapp server -listen ADDR      # answers 200 with the request it received, as JSON
//
// The client prints one line per request on stdout: the trace id of its root
// span. It exits 1 when a request fails or answers other than 200. "{i}" in
// URL is replaced by the request's index, from 0, so each request can carry
// its own id in its path.
//
// The server prints "listening on HOST:PORT" once it accepts connections
// (ADDR may be "127.0.0.1:0") and answers every request with an Echo. It
// stops on SIGTERM or SIGINT.
//
// Both export their spans with the OTLP/HTTP exporter configured from the
// standard environment (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_BSP_*;
// OTEL_TRACES_EXPORTER=none exports nothing), propagate W3C trace context and
// baggage, and flush their spans before exiting, SIGTERM included.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Echo is the server's answer: the request as the handler received it,
// and the server span that otelhttp made for it.
type Echo struct {
	Method        string              `json:"method"`
	RequestURI    string              `json:"request_uri"`
	Host          string              `json:"host"`
	Proto         string              `json:"proto"`
	ContentLength int64               `json:"content_length"`
	Body          string              `json:"body"`
	Headers       map[string][]string `json:"headers"`
	TraceID       string              `json:"trace_id"`
	SpanID        string              `json:"span_id"`
	ParentSpanID  string              `json:"parent_span_id,omitempty"`
	Sampled       bool                `json:"sampled"`
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "client":
		err = client(os.Args[2:])
	case "server":
		err = server(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "otelapp:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: otelapp client -url URL [-n N] | otelapp server -listen ADDR")
	os.Exit(2)
}

// setup installs the global tracer provider and propagator and returns the
// function that flushes and stops the provider.
func setup(ctx context.Context) (func() error, error) {
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")) != "none" {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("OTLP/HTTP exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { fmt.Fprintln(os.Stderr, "otelapp: otel:", err) }))
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			return fmt.Errorf("flush spans: %w", err)
		}
		return nil
	}, nil
}

// client sends -n GET requests to -url, each in its own root span.
func client(args []string) (err error) {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	url := fs.String("url", "", "URL to GET; {i} is replaced by the request's index")
	n := fs.Int("n", 1, "number of requests")
	_ = fs.Parse(args)
	if *url == "" {
		return errors.New("client: -url is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	shutdown, err := setup(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, shutdown()) }()

	hc := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport), Timeout: 30 * time.Second}
	tracer := otel.Tracer("otelapp")
	for i := 0; i < *n && ctx.Err() == nil; i++ {
		if err := get(ctx, hc, tracer, strings.ReplaceAll(*url, "{i}", strconv.Itoa(i))); err != nil {
			return err
		}
	}
	return nil
}

// get sends one GET inside a new root span and prints the span's trace id.
func get(ctx context.Context, hc *http.Client, tracer trace.Tracer, url string) error {
	ctx, span := tracer.Start(ctx, "otelapp.client", trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindInternal))
	defer span.End()
	fmt.Println(span.SpanContext().TraceID())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("GET %s: read body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// server serves echo on -listen until SIGTERM or SIGINT.
func server(args []string) (err error) {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	_ = fs.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	shutdown, err := setup(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, shutdown()) }()

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: otelhttp.NewHandler(http.HandlerFunc(echo), "otelapp.server"), ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening on %s\n", lis.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// echo answers 200 with the request it received, as an Echo.
func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	span := trace.SpanFromContext(r.Context())
	sc := span.SpanContext()
	e := Echo{
		Method:        r.Method,
		RequestURI:    r.RequestURI,
		Host:          r.Host,
		Proto:         r.Proto,
		ContentLength: r.ContentLength,
		Body:          string(body),
		Headers:       r.Header,
		TraceID:       sc.TraceID().String(),
		SpanID:        sc.SpanID().String(),
		Sampled:       sc.IsSampled(),
	}
	// The parent as otelhttp saw it; an unsampled span records nothing, so
	// it is read off the headers with the same propagator.
	parent := trace.SpanContextFromContext(otel.GetTextMapPropagator().Extract(context.Background(), propagation.HeaderCarrier(r.Header)))
	if parent.IsValid() {
		e.ParentSpanID = parent.SpanID().String()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(e)
}
