package export

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestMetricsReportTheCountsUnderTheSDKNames: the tracer's own metrics are
// the counts, under the OpenTelemetry SDK self-observability names, split
// by error.type.
func TestMetricsReportTheCountsUnderTheSDKNames(t *testing.T) {
	var counts Counts
	proc := counts.Child()
	proc.AddRecorded(100)
	proc.Add(Exported, 90)
	proc.Add(QueueFull, 4)
	proc.Add(Rejected, 3)
	proc.Add(ExportFailed, 1)
	proc.Add(RingBufferFull, 7)
	proc.Add(Unsampled, 5)

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	require.NoError(t, registerMetrics(mp.Meter(MeterName), &counts, 1000))
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))

	got := map[string]map[string]int64{} // metric name -> "key=value" of its distinguishing attribute -> value
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = map[string]int64{}
			var points []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				points = d.DataPoints
			case metricdata.Gauge[int64]:
				points = d.DataPoints
			default:
				t.Fatalf("%s: unexpected data %T", m.Name, m.Data)
			}
			for _, p := range points {
				key := ""
				for _, k := range []attribute.Key{"error.type", "otel.span.sampling_result"} {
					if v, ok := p.Attributes.Value(k); ok {
						key = string(k) + "=" + v.AsString()
					}
				}
				got[m.Name][key] = p.Value
			}
		}
	}
	assert.Equal(t, map[string]map[string]int64{
		"otel.sdk.span.started":                  {"otel.span.sampling_result=RECORD_AND_SAMPLE": 100, "otel.span.sampling_result=DROP": 5},
		"otel.sdk.processor.span.processed":      {"": 94, "error.type=queue_full": 4},
		"otel.sdk.exporter.span.exported":        {"": 90, "error.type=rejected": 3, "error.type=export_failed": 1},
		"otel.sdk.processor.span.queue.size":     {"": 2},
		"otel.sdk.processor.span.queue.capacity": {"": 1000},
		"offsetdb.tracer.event.lost":             {"error.type=ring_buffer_full": 7, "error.type=invalid": 0},
	}, got)
}

// TestMeterProviderFollowsTheTracesExporter: the tracer's metrics go out
// over OTLP when the spans do, not when they are printed or discarded,
// and OTEL_METRICS_EXPORTER decides when set; a bad value names itself.
func TestMeterProviderFollowsTheTracesExporter(t *testing.T) {
	for _, tt := range []struct {
		traces, metrics string
		want            bool
		err             string
	}{
		{"", "", true, ""},
		{"otlp", "", true, ""},
		{"console", "", false, ""},
		{"none", "", false, ""},
		{"console", "otlp", true, ""},
		{"otlp", "none", false, ""},
		{"otlp", "prometheus", false, `OTEL_METRICS_EXPORTER="prometheus"`},
	} {
		t.Setenv(EnvTracesExporter, tt.traces)
		t.Setenv(EnvMetricsExporter, tt.metrics)
		t.Setenv(EnvEndpoint, "http://127.0.0.1:1")
		mp, err := NewMeterProvider(context.Background(), new(Counts), 10)
		if tt.err != "" {
			assert.ErrorContains(t, err, tt.err)
			continue
		}
		require.NoError(t, err, "%+v", tt)
		assert.Equal(t, tt.want, mp != nil, "%+v", tt)
		if mp != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 0)
			_ = mp.Shutdown(ctx) // nothing listens; only its goroutines matter
			cancel()
		}
	}
}
