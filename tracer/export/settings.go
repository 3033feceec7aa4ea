package export

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrBadSetting is returned by Check and NewTracerProvider for an
// environment variable whose value cannot be used; the message names it.
var ErrBadSetting = errors.New("invalid setting")

// Endpoint environment variables, read by the OTLP exporters and checked
// by Check.
const (
	EnvEndpoint        = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint  = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvMetricsEndpoint = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
)

// The OTLP specification's default endpoints, used when no endpoint
// variable is set. (The Go exporters alone would use https on these ports.)
const (
	DefaultHTTPEndpoint = "http://localhost:4318"
	DefaultGRPCEndpoint = "http://localhost:4317"
)

// tracesProtocol returns the OTLP protocol for traces, lower-cased, and the
// variable it came from ("default" if none).
func tracesProtocol() (protocol, source string) {
	for _, env := range []string{EnvTracesProtocol, EnvProtocol} {
		if v := strings.TrimSpace(os.Getenv(env)); v != "" {
			return strings.ToLower(v), env
		}
	}
	return DefaultProtocol, "default"
}

// Destination describes where spans go, for the tracer's first log line:
// the exporters OTEL_TRACES_EXPORTER names and, for otlp, the protocol and
// the endpoint with where it came from. It returns an error (see Check) for
// settings that cannot work.
func Destination() ([]any, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	names, _ := exporterNames(os.Getenv(EnvTracesExporter))
	attrs := []any{"exporters", strings.Join(names, ",")}
	if len(names) == 0 {
		attrs[1] = "none"
	}
	for _, n := range names {
		if n != "otlp" {
			continue
		}
		protocol, _ := tracesProtocol()
		endpoint, source := tracesEndpoint(protocol)
		attrs = append(attrs, "protocol", protocol, "endpoint", endpoint, "endpoint_from", source)
		if source == "default" {
			attrs = append(attrs, "hint", "no endpoint configured: set "+EnvEndpoint+", or "+EnvTracesExporter+"=console to print the spans")
		}
	}
	return attrs, nil
}

// tracesEndpoint returns the URL OTLP traces go to and what set it.
func tracesEndpoint(protocol string) (endpoint, source string) {
	if v := strings.TrimSpace(os.Getenv(EnvTracesEndpoint)); v != "" {
		return v, EnvTracesEndpoint
	}
	base, source := strings.TrimSpace(os.Getenv(EnvEndpoint)), EnvEndpoint
	if base == "" {
		base, source = DefaultHTTPEndpoint, "default"
		if protocol == "grpc" {
			base = DefaultGRPCEndpoint
		}
	}
	if protocol == "grpc" {
		return base, source
	}
	return strings.TrimSuffix(base, "/") + "/v1/traces", source
}

// Check validates the environment the exporters will read, so that a bad
// value is reported at start, naming the variable, rather than failing
// every export later or being ignored: OTEL_TRACES_EXPORTER, the OTLP
// protocol, the endpoint URLs (http or https, with a host), OTEL_BSP_*,
// the OTLP timeouts and OTEL_METRIC_EXPORT_INTERVAL and _TIMEOUT.
func Check() error {
	names, err := exporterNames(os.Getenv(EnvTracesExporter))
	if err != nil {
		return err
	}
	if _, err := bufferFromEnv(BufferOptions{}); err != nil {
		return err
	}
	metricNames, err := metricsExporters(false)
	if err != nil {
		return err
	}
	if slices.Contains(metricNames, "prometheus") {
		if _, err := PrometheusAddress(""); err != nil {
			return err
		}
	}
	for _, env := range []string{"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
		"OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT"} {
		if _, err := envInt(env); err != nil {
			return err
		}
	}
	for _, env := range []string{EnvEndpoint, EnvTracesEndpoint, EnvMetricsEndpoint} {
		v := strings.TrimSpace(os.Getenv(env))
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err == nil && (u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
			err = errors.New("want an http:// or https:// URL with a host, such as " + DefaultHTTPEndpoint)
		}
		if err != nil {
			return fmt.Errorf("%s=%q: %w: %w", env, v, ErrBadSetting, err)
		}
	}
	for _, n := range names {
		if n == "otlp" {
			protocol, source := tracesProtocol()
			if protocol != "http/protobuf" && protocol != "grpc" {
				return fmt.Errorf("%s=%q: %w (want http/protobuf or grpc)", source, protocol, ErrUnknownProtocol)
			}
		}
	}
	return nil
}

// bufferFromEnv fills the zero fields of o from OTEL_BSP_MAX_QUEUE_SIZE,
// OTEL_BSP_MAX_EXPORT_BATCH_SIZE, OTEL_BSP_SCHEDULE_DELAY and
// OTEL_BSP_EXPORT_TIMEOUT (milliseconds), then from the defaults.
func bufferFromEnv(o BufferOptions) (BufferOptions, error) {
	ints := []struct {
		env string
		v   *int
	}{{"OTEL_BSP_MAX_QUEUE_SIZE", &o.MaxQueue}, {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &o.BatchSize}}
	for _, f := range ints {
		n, err := envInt(f.env)
		if err != nil {
			return o, err
		}
		if *f.v == 0 {
			*f.v = n
		}
	}
	durs := []struct {
		env string
		v   *time.Duration
	}{{"OTEL_BSP_SCHEDULE_DELAY", &o.Delay}, {"OTEL_BSP_EXPORT_TIMEOUT", &o.ExportTimeout}}
	for _, f := range durs {
		n, err := envInt(f.env)
		if err != nil {
			return o, err
		}
		if *f.v == 0 {
			*f.v = time.Duration(n) * time.Millisecond
		}
	}
	return o.withDefaults(), nil
}

// envInt reads a positive integer from env; 0 when unset.
func envInt(env string) (int, error) {
	v := strings.TrimSpace(os.Getenv(env))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err == nil && n <= 0 {
		err = errors.New("must be positive")
	}
	if err != nil {
		return 0, fmt.Errorf("%s=%q: %w: want a positive integer: %w", env, v, ErrBadSetting, err)
	}
	return n, nil
}
