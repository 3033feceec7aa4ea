// Package export builds the OpenTelemetry TracerProvider the tracer's spans
// leave through, configured from the environment as the OpenTelemetry
// specification defines it (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_*,
// OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_SDK_DISABLED, OTEL_BSP_*),
// and holds the console exporter.
package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/offsetdb/offsetdb/tracer/spans"
)

// Environment variables read by NewTracerProvider itself; the OTLP exporters
// read their own (OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, _TIMEOUT, ...) and
// the SDK reads OTEL_TRACES_SAMPLER, OTEL_BSP_* and OTEL_SPAN_*_LIMIT.
const (
	EnvTracesExporter = "OTEL_TRACES_EXPORTER"
	EnvProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvSDKDisabled    = "OTEL_SDK_DISABLED"
)

// Defaults the specification sets for OTEL_TRACES_EXPORTER and the OTLP protocol.
const (
	DefaultTracesExporter = "otlp"
	DefaultProtocol       = "http/protobuf"
)

// unknownService is service.name when nothing names the service.
const unknownService = "unknown_service"

var (
	// ErrUnknownExporter is returned for an OTEL_TRACES_EXPORTER value this
	// tracer does not provide.
	ErrUnknownExporter = errors.New("unsupported traces exporter")

	// ErrUnknownProtocol is returned for an OTLP protocol this tracer does
	// not speak.
	ErrUnknownProtocol = errors.New("unsupported OTLP protocol")
)

// Options are the settings the environment cannot give.
type Options struct {
	// ServiceName is service.name when neither OTEL_SERVICE_NAME nor
	// OTEL_RESOURCE_ATTRIBUTES sets one; the CLI passes the traced
	// executable's base name. Empty means "unknown_service".
	ServiceName string

	// PID and Executable, when set, describe the traced process as
	// process.pid, process.executable.path and process.executable.name,
	// so that processes of one executable (one service.name) can be told
	// apart. OTEL_RESOURCE_ATTRIBUTES may override them.
	PID        int
	Executable string

	// Attributes describe the traced process further: container.id, its
	// pod's k8s.* attributes and its own OTEL_RESOURCE_ATTRIBUTES (package
	// kube). The tracer's OTEL_RESOURCE_ATTRIBUTES may override them.
	Attributes []attribute.KeyValue

	// Console receives the console exporter's JSON lines; os.Stdout when nil.
	Console io.Writer

	// Counts, when set, counts the provider's spans (see Processor); with
	// several exporters, the first one's outcomes are counted.
	Counts *Counts
	// Buffer tunes the span processor of each exporter; zero fields come
	// from OTEL_BSP_* or the defaults.
	Buffer BufferOptions
	// Log receives export failures and losses; slog.Default() when nil.
	Log *slog.Logger
}

// NewTracerProvider returns an SDK TracerProvider configured from the
// environment, ready for spans.NewRecorder: it is built with
// spans.IDGenerator, so spans keep the IDs the eBPF side assigned.
//
// OTEL_TRACES_EXPORTER is a comma-separated list of "otlp" (the default),
// "console" and "none"; each exporter gets its own Processor: a bounded
// buffer that survives collector outages and counts every span into
// Options.Counts. The OTLP exporters retry retryable failures themselves
// (exponential backoff with jitter, Retry-After honoured) within one
// export; the Processor retries what they give up on.
// The OTLP protocol comes from OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else
// OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" (the default) or "grpc".
// Values are case-insensitive; an unknown or unsupported one is an error
// (ErrUnknownExporter, ErrUnknownProtocol) rather than a silent fallback.
// OTEL_SDK_DISABLED=true yields a provider that exports nothing.
//
// The caller must call Shutdown on the provider: it flushes the spans still
// queued and shuts the exporters down.
func NewTracerProvider(ctx context.Context, opts Options) (*sdktrace.TracerProvider, error) {
	res, err := newResource(ctx, opts)
	if err != nil {
		return nil, err
	}
	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithIDGenerator(spans.IDGenerator()),
	}
	if strings.EqualFold(strings.TrimSpace(os.Getenv(EnvSDKDisabled)), "true") {
		if opts.Counts != nil {
			tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(discarder{opts.Counts}))
		}
		return sdktrace.NewTracerProvider(tpOpts...), nil
	}
	buf, err := bufferFromEnv(opts.Buffer)
	if err != nil {
		return nil, err
	}
	exporters, names, err := newExporters(ctx, opts, buf)
	if err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	if len(exporters) == 0 && opts.Counts != nil {
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(discarder{opts.Counts}))
	}
	for i, e := range exporters {
		counts := opts.Counts
		if i > 0 || counts == nil {
			counts = new(Counts) // counted once, by the first exporter's processor
		}
		pbuf := buf
		if names[i] != "otlp" {
			pbuf.Spool = nil // only a collector can be away
		}
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(NewProcessor(e, pbuf, counts, log)))
	}
	return sdktrace.NewTracerProvider(tpOpts...), nil
}

// newResource describes the traced service: telemetry SDK attributes, then
// service.name and the process from Options, then OTEL_RESOURCE_ATTRIBUTES
// and OTEL_SERVICE_NAME, later ones winning.
func newResource(ctx context.Context, opts Options) (*resource.Resource, error) {
	serviceName := opts.ServiceName
	if serviceName == "" {
		serviceName = unknownService
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(serviceName)}
	if opts.PID > 0 {
		attrs = append(attrs, semconv.ProcessPID(opts.PID))
	}
	if opts.Executable != "" {
		attrs = append(attrs, semconv.ProcessExecutablePath(opts.Executable), semconv.ProcessExecutableName(filepath.Base(opts.Executable)))
	}
	attrs = append(attrs, opts.Attributes...)
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attrs...),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("build resource from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return res, nil
}

// newExporters creates the exporters OTEL_TRACES_EXPORTER names, and
// returns them with their names.
func newExporters(ctx context.Context, opts Options, buf BufferOptions) ([]sdktrace.SpanExporter, []string, error) {
	names, err := exporterNames(os.Getenv(EnvTracesExporter))
	if err != nil {
		return nil, nil, err
	}
	var exporters []sdktrace.SpanExporter
	for _, name := range names {
		var e sdktrace.SpanExporter
		switch name {
		case "otlp":
			e, err = newOTLPExporter(ctx, buf)
		case "console":
			w := opts.Console
			if w == nil {
				w = os.Stdout
			}
			e = NewConsoleExporter(w)
		}
		if err != nil {
			for _, made := range exporters {
				_ = made.Shutdown(ctx)
			}
			return nil, nil, err
		}
		exporters = append(exporters, e)
	}
	return exporters, names, nil
}

// exporterNames parses an OTEL_TRACES_EXPORTER value into the distinct
// exporter names it lists; "none" (alone) yields no name.
func exporterNames(value string) ([]string, error) {
	if strings.TrimSpace(value) == "" {
		value = DefaultTracesExporter
	}
	var names []string
	seen := map[string]bool{}
	for _, field := range strings.Split(value, ",") {
		name := strings.ToLower(strings.TrimSpace(field))
		switch name {
		case "otlp", "console", "none":
		case "zipkin", "jaeger", "logging", "prometheus":
			return nil, fmt.Errorf("%s=%q: %w: %q is not provided by this tracer (use otlp, console or none)",
				EnvTracesExporter, value, ErrUnknownExporter, name)
		default:
			return nil, fmt.Errorf("%s=%q: %w: unknown exporter %q (want otlp, console or none)",
				EnvTracesExporter, value, ErrUnknownExporter, name)
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	if seen["none"] {
		if len(names) > 1 {
			return nil, fmt.Errorf("%s=%q: %w: none cannot be combined with other exporters",
				EnvTracesExporter, value, ErrUnknownExporter)
		}
		return nil, nil
	}
	return names, nil
}

// newOTLPExporter creates the official OTLP exporter for the configured
// protocol; it reads the endpoint, headers, timeout, compression and TLS
// settings from the environment itself. Its retries (exponential backoff
// from buf.RetryInitial to buf.RetryMax with jitter, Retry-After and gRPC
// RetryInfo honoured, for connection resets, 429, 502, 503, 504 and gRPC
// Unavailable, ResourceExhausted with RetryInfo, ...) stop at half the
// export timeout, so that the batch goes back to the Processor, which
// retries the rest, including connection refused.
func newOTLPExporter(ctx context.Context, buf BufferOptions) (sdktrace.SpanExporter, error) {
	protocol, protocolSource := tracesProtocol()
	var (
		e   sdktrace.SpanExporter
		err error
	)
	retry := struct {
		Enabled                                      bool
		InitialInterval, MaxInterval, MaxElapsedTime time.Duration
	}{true, buf.RetryInitial, buf.RetryMax, buf.ExportTimeout / 2}
	endpoint, source := tracesEndpoint(protocol)
	switch protocol {
	case "http/protobuf":
		opts := []otlptracehttp.Option{otlptracehttp.WithRetry(otlptracehttp.RetryConfig(retry))}
		if source == "default" {
			opts = append(opts, otlptracehttp.WithEndpointURL(endpoint))
		}
		e, err = otlptracehttp.New(ctx, opts...)
	case "grpc":
		opts := []otlptracegrpc.Option{otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig(retry))}
		if source == "default" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(endpoint))
		}
		e, err = otlptracegrpc.New(ctx, opts...)
	case "http/json":
		return nil, fmt.Errorf("%s=%q: %w: the Go OTLP exporter does not speak http/json (use http/protobuf or grpc)",
			protocolSource, protocol, ErrUnknownProtocol)
	default:
		return nil, fmt.Errorf("%s=%q: %w (want http/protobuf or grpc)", protocolSource, protocol, ErrUnknownProtocol)
	}
	if err != nil {
		return nil, fmt.Errorf("create OTLP %s exporter: %w", protocol, err)
	}
	return e, nil
}

// discarder counts the spans of OTEL_TRACES_EXPORTER=none (or
// OTEL_SDK_DISABLED=true) as recorded and discarded, so that the counts add
// up there too.
type discarder struct{ counts *Counts }

func (discarder) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (d discarder) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.SpanContext().IsSampled() {
		d.counts.AddRecorded(1)
		d.counts.Add(Discarded, 1)
	}
}

func (discarder) Shutdown(context.Context) error   { return nil }
func (discarder) ForceFlush(context.Context) error { return nil }
