package export

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/otelconv"
)

// EnvMetricsExporter selects the exporter of the tracer's own metrics.
const EnvMetricsExporter = "OTEL_METRICS_EXPORTER"

// MeterName is the instrumentation scope of the tracer's own metrics.
const MeterName = "github.com/offsetdb/offsetdb/tracer/export"

// TracerServiceName is service.name of the tracer's own metrics (the
// spans carry the traced program's).
const TracerServiceName = "offsetdb-tracer"

// The tracer's metric for events lost before they became spans; the
// others are the OpenTelemetry SDK's self-observability metrics.
const eventsLostName = "offsetdb.tracer.event.lost"

// Metrics is the MeterProvider of the tracer's own metrics and, when asked
// for, the HTTP server that offers them to Prometheus.
type Metrics struct {
	provider *sdkmetric.MeterProvider
	server   *http.Server
	addr     net.Addr
}

// PrometheusAddr is the address the Prometheus endpoint listens on (the
// port chosen when it was asked for as port 0), or nil without one.
func (m *Metrics) PrometheusAddr() net.Addr { return m.addr }

// Shutdown exports the last values over OTLP and closes the Prometheus
// endpoint. It returns the first error.
func (m *Metrics) Shutdown(ctx context.Context) error {
	err := m.provider.Shutdown(ctx)
	if m.server != nil {
		err = errors.Join(err, m.server.Shutdown(ctx))
	}
	return err
}

// NewMeterProvider returns the tracer's own metrics, read from counts at
// each collection, with the OpenTelemetry SDK self-observability names
// (capacity is each process's export buffer, 0 for the default):
//
//   - otel.sdk.span.started, by otel.span.sampling_result: RECORD_AND_SAMPLE
//     for recorded spans, DROP for unsampled ones;
//   - otel.sdk.processor.span.processed, with error.type=queue_full for spans
//     dropped from a full export buffer;
//   - otel.sdk.exporter.span.exported, with error.type=rejected or
//     export_failed for spans not exported;
//   - otel.sdk.processor.span.queue.size: spans recorded and not yet
//     exported or dropped; otel.sdk.processor.span.queue.capacity;
//   - offsetdb.tracer.event.lost, by error.type ring_buffer_full, invalid
//     or in_flight_lost: events lost before they became spans.
//
// OTEL_METRICS_EXPORTER is a comma-separated list of otlp, prometheus and
// none; by default otlp when OTEL_TRACES_EXPORTER includes otlp, else none.
// otlp follows the same settings as the spans: the OTLP protocol and
// endpoint variables (the default endpoint as for traces),
// OTEL_METRIC_EXPORT_INTERVAL. prometheus serves the Prometheus text format
// at http://HOST:PORT/metrics, HOST:PORT from promAddr when it is not
// empty (which also turns prometheus on), else from
// OTEL_EXPORTER_PROMETHEUS_HOST (localhost) and
// OTEL_EXPORTER_PROMETHEUS_PORT (9464); names follow the Prometheus
// translation of the OpenTelemetry ones (otel_sdk_span_started_total). It
// returns nil when nothing is to be exported, and an error wrapping
// ErrBadSetting for a bad value or an address it cannot listen on. The
// caller shuts the metrics down, which exports the last values.
func NewMeterProvider(ctx context.Context, counts *Counts, capacity int, promAddr string) (*Metrics, error) {
	names, err := metricsExporters(promAddr != "")
	if err != nil {
		return nil, err
	}
	var readers []sdkmetric.Option
	m := &Metrics{}
	for _, name := range names {
		switch name {
		case "otlp":
			exporter, err := newMetricExporter(ctx)
			if err != nil {
				return nil, err
			}
			readers = append(readers, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exporter)))
		case "prometheus":
			reader, err := m.servePrometheus(promAddr)
			if err != nil {
				return nil, err
			}
			readers = append(readers, sdkmetric.WithReader(reader))
		}
	}
	if len(readers) == 0 {
		return nil, nil
	}
	res, err := resource.New(ctx, resource.WithSchemaURL(semconv.SchemaURL), resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(TracerServiceName), semconv.ProcessPID(os.Getpid())))
	if err != nil {
		m.closeServer()
		return nil, fmt.Errorf("tracer metrics resource: %w", err)
	}
	if capacity <= 0 { // the default buffer: OTEL_BSP_MAX_QUEUE_SIZE, else DefaultMaxQueue
		if b, err := bufferFromEnv(BufferOptions{}); err == nil {
			capacity = b.withDefaults().MaxQueue
		}
	}
	m.provider = sdkmetric.NewMeterProvider(append(readers, sdkmetric.WithResource(res))...)
	if err := registerMetrics(m.provider.Meter(MeterName), counts, capacity); err != nil {
		_ = m.Shutdown(ctx)
		return nil, err
	}
	return m, nil
}

// The Prometheus exporter's settings (OpenTelemetry SDK environment
// variables) and their defaults.
const (
	EnvPrometheusHost     = "OTEL_EXPORTER_PROMETHEUS_HOST"
	EnvPrometheusPort     = "OTEL_EXPORTER_PROMETHEUS_PORT"
	DefaultPrometheusHost = "localhost"
	DefaultPrometheusPort = "9464"
)

// PrometheusAddress returns HOST:PORT for the Prometheus endpoint: addr
// (the --prometheus-address flag) if set, else from
// OTEL_EXPORTER_PROMETHEUS_HOST/_PORT. A malformed one is an error wrapping
// ErrBadSetting that names the flag or variable.
func PrometheusAddress(addr string) (string, error) {
	if addr != "" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", fmt.Errorf("%w: --prometheus-address %q: want HOST:PORT (%v)", ErrBadSetting, addr, err)
		}
		return addr, nil
	}
	host := cmp.Or(strings.TrimSpace(os.Getenv(EnvPrometheusHost)), DefaultPrometheusHost)
	port := cmp.Or(strings.TrimSpace(os.Getenv(EnvPrometheusPort)), DefaultPrometheusPort)
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("%w: %s=%q: want a port number", ErrBadSetting, EnvPrometheusPort, port)
	}
	return net.JoinHostPort(host, port), nil
}

// servePrometheus listens on the Prometheus address and serves /metrics
// from a registry of its own (only the tracer's metrics, none of the Go
// runtime's), returning the reader that feeds it.
func (m *Metrics) servePrometheus(addr string) (sdkmetric.Reader, error) {
	addr, err := PrometheusAddress(addr)
	if err != nil {
		return nil, err
	}
	reg := promclient.NewRegistry()
	reader, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("create the Prometheus exporter: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve metrics for Prometheus on %s: %w: %v (choose another with --prometheus-address or %s)", addr, ErrBadSetting, err, EnvPrometheusPort)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	m.addr = ln.Addr()
	go func() { _ = m.server.Serve(ln) }()
	return reader, nil
}

func (m *Metrics) closeServer() {
	if m.server != nil {
		_ = m.server.Close()
	}
}

// registerMetrics creates the observable instruments reading counts.
func registerMetrics(m metric.Meter, counts *Counts, capacity int) error {
	started, err := otelconv.NewSDKSpanStartedObservable(m)
	if err != nil {
		return err
	}
	processed, err := otelconv.NewSDKProcessorSpanProcessedObservable(m)
	if err != nil {
		return err
	}
	exported, err := otelconv.NewSDKExporterSpanExportedObservable(m)
	if err != nil {
		return err
	}
	queueSize, err := m.Int64ObservableUpDownCounter(otelconv.SDKProcessorSpanQueueSize{}.Name(),
		metric.WithUnit("{span}"), metric.WithDescription(otelconv.SDKProcessorSpanQueueSize{}.Description()))
	if err != nil {
		return err
	}
	queueCap, err := m.Int64ObservableUpDownCounter(otelconv.SDKProcessorSpanQueueCapacity{}.Name(),
		metric.WithUnit("{span}"), metric.WithDescription(otelconv.SDKProcessorSpanQueueCapacity{}.Description()))
	if err != nil {
		return err
	}
	lost, err := m.Int64ObservableCounter(eventsLostName, metric.WithUnit("{event}"),
		metric.WithDescription("Events lost before they became spans: the BPF ring buffer was full, or the record could not be decoded."))
	if err != nil {
		return err
	}
	processor := metric.WithAttributes(
		attribute.String("otel.component.type", string(otelconv.ComponentTypeBatchingSpanProcessor)),
		attribute.String("otel.component.name", "offsetdb_processor/0"))
	withError := func(r Reason) metric.ObserveOption {
		return metric.WithAttributes(attribute.String("error.type", r.String()))
	}
	sampling := func(v otelconv.SpanSamplingResultAttr) metric.ObserveOption {
		return metric.WithAttributes(attribute.String("otel.span.sampling_result", string(v)))
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := counts.Snapshot()
		o.ObserveInt64(started.Inst(), s.Recorded, sampling(otelconv.SpanSamplingResultRecordAndSample))
		o.ObserveInt64(started.Inst(), s.By[Unsampled], sampling(otelconv.SpanSamplingResultDrop))
		o.ObserveInt64(processed.Inst(), s.By[Exported]+s.By[Rejected]+s.By[ExportFailed], processor)
		o.ObserveInt64(processed.Inst(), s.By[QueueFull], processor, withError(QueueFull))
		o.ObserveInt64(exported.Inst(), s.By[Exported])
		o.ObserveInt64(exported.Inst(), s.By[Rejected], withError(Rejected))
		o.ObserveInt64(exported.Inst(), s.By[ExportFailed], withError(ExportFailed))
		o.ObserveInt64(queueSize, s.Pending(), processor)
		o.ObserveInt64(queueCap, int64(capacity), processor)
		o.ObserveInt64(lost, s.By[RingBufferFull], withError(RingBufferFull))
		o.ObserveInt64(lost, s.By[Invalid], withError(Invalid))
		o.ObserveInt64(lost, s.By[InFlightLost], withError(InFlightLost))
		return nil
	}, started.Inst(), processed.Inst(), exported.Inst(), queueSize, queueCap, lost)
	return err
}

// metricsExporters returns the metric exporters to run, each "otlp" or
// "prometheus": OTEL_METRICS_EXPORTER, or by default otlp when the spans
// go over OTLP; prometheus too when withPrometheus (the flag asked for it).
func metricsExporters(withPrometheus bool) ([]string, error) {
	value := strings.TrimSpace(os.Getenv(EnvMetricsExporter))
	var names []string
	if value == "" {
		traces, _ := exporterNames(os.Getenv(EnvTracesExporter))
		if slices.Contains(traces, "otlp") {
			names = append(names, "otlp")
		}
	} else {
		for _, n := range strings.Split(value, ",") {
			n = strings.ToLower(strings.TrimSpace(n))
			switch n {
			case "otlp", "prometheus":
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			case "none":
			default:
				return nil, fmt.Errorf("%s=%q: %w: want a list of otlp, prometheus or none", EnvMetricsExporter, value, ErrBadSetting)
			}
		}
	}
	if withPrometheus && !slices.Contains(names, "prometheus") {
		names = append(names, "prometheus")
	}
	return names, nil
}

// newMetricExporter creates the OTLP metric exporter.
func newMetricExporter(ctx context.Context) (sdkmetric.Exporter, error) {
	protocol, source := DefaultProtocol, "default"
	for _, env := range []string{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", EnvProtocol} {
		if v := strings.TrimSpace(os.Getenv(env)); v != "" {
			protocol, source = strings.ToLower(v), env
			break
		}
	}
	endpointSet := os.Getenv(EnvEndpoint) != "" || os.Getenv(EnvMetricsEndpoint) != ""
	var (
		e   sdkmetric.Exporter
		err error
	)
	switch protocol {
	case "http/protobuf":
		var opts []otlpmetrichttp.Option
		if !endpointSet {
			opts = append(opts, otlpmetrichttp.WithEndpointURL(DefaultHTTPEndpoint+"/v1/metrics"))
		}
		e, err = otlpmetrichttp.New(ctx, opts...)
	case "grpc":
		var opts []otlpmetricgrpc.Option
		if !endpointSet {
			opts = append(opts, otlpmetricgrpc.WithEndpointURL(DefaultGRPCEndpoint))
		}
		e, err = otlpmetricgrpc.New(ctx, opts...)
	default:
		return nil, fmt.Errorf("%s=%q: %w (want http/protobuf or grpc)", source, protocol, ErrUnknownProtocol)
	}
	if err != nil {
		return nil, fmt.Errorf("create OTLP %s metric exporter: %w", protocol, err)
	}
	return e, nil
}
