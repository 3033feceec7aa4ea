package export

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
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

// NewMeterProvider returns a MeterProvider exporting the tracer's own
// metrics, read from counts at each collection, with the OpenTelemetry
// SDK self-observability names:
//
//   - otel.sdk.span.started, by otel.span.sampling_result: RECORD_AND_SAMPLE
//     for recorded spans, DROP for unsampled ones;
//   - otel.sdk.processor.span.processed, with error.type=queue_full for spans
//     dropped from a full export buffer;
//   - otel.sdk.exporter.span.exported, with error.type=rejected or
//     export_failed for spans not exported;
//   - otel.sdk.processor.span.queue.size: spans recorded and not yet
//     exported or dropped; otel.sdk.processor.span.queue.capacity;
//   - offsetdb.tracer.event.lost, by error.type ring_buffer_full or invalid:
//     events lost before they became spans.
//
// The exporter follows the same settings as the spans: OTEL_METRICS_EXPORTER
// ("otlp" or "none"; by default otlp when OTEL_TRACES_EXPORTER includes
// otlp, else none), the OTLP protocol and endpoint variables (the default
// endpoint as for traces), OTEL_METRIC_EXPORT_INTERVAL. It returns nil
// when nothing is to be exported. The caller shuts the provider down,
// which exports the last values.
func NewMeterProvider(ctx context.Context, counts *Counts, capacity int) (*sdkmetric.MeterProvider, error) {
	exporter, err := newMetricExporter(ctx)
	if err != nil || exporter == nil {
		return nil, err
	}
	res, err := resource.New(ctx, resource.WithSchemaURL(semconv.SchemaURL), resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(TracerServiceName), semconv.ProcessPID(os.Getpid())))
	if err != nil {
		return nil, fmt.Errorf("tracer metrics resource: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exporter)))
	if err := registerMetrics(mp.Meter(MeterName), counts, capacity); err != nil {
		_ = mp.Shutdown(ctx)
		return nil, err
	}
	return mp, nil
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
		return nil
	}, started.Inst(), processed.Inst(), exported.Inst(), queueSize, queueCap, lost)
	return err
}

// metricsExporter returns "otlp" or "none": OTEL_METRICS_EXPORTER, or by
// default otlp when the spans go over OTLP.
func metricsExporter() (string, error) {
	name := strings.ToLower(strings.TrimSpace(os.Getenv(EnvMetricsExporter)))
	if name == "" {
		traces, _ := exporterNames(os.Getenv(EnvTracesExporter))
		name = "none"
		for _, t := range traces {
			if t == "otlp" {
				name = "otlp"
			}
		}
	}
	if name != "otlp" && name != "none" {
		return "", fmt.Errorf("%s=%q: %w: want otlp or none", EnvMetricsExporter, name, ErrBadSetting)
	}
	return name, nil
}

// newMetricExporter creates the exporter OTEL_METRICS_EXPORTER selects, or
// nil for none.
func newMetricExporter(ctx context.Context) (sdkmetric.Exporter, error) {
	name, err := metricsExporter()
	if err != nil || name == "none" {
		return nil, err
	}
	protocol, source := DefaultProtocol, "default"
	for _, env := range []string{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", EnvProtocol} {
		if v := strings.TrimSpace(os.Getenv(env)); v != "" {
			protocol, source = strings.ToLower(v), env
			break
		}
	}
	endpointSet := os.Getenv(EnvEndpoint) != "" || os.Getenv(EnvMetricsEndpoint) != ""
	var e sdkmetric.Exporter
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
