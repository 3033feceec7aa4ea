package export

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
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
	proc.Add(InFlightLost, 3)

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
		"offsetdb.tracer.event.lost":             {"error.type=ring_buffer_full": 7, "error.type=invalid": 0, "error.type=in_flight_lost": 3},
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
		{"otlp", "prometheus", true, ""},
		{"none", "none,prometheus", true, ""},
		{"otlp", "otlp,statsd", false, `OTEL_METRICS_EXPORTER="otlp,statsd"`},
	} {
		t.Setenv(EnvTracesExporter, tt.traces)
		t.Setenv(EnvMetricsExporter, tt.metrics)
		t.Setenv(EnvEndpoint, "http://127.0.0.1:1")
		t.Setenv(EnvPrometheusHost, "127.0.0.1")
		t.Setenv(EnvPrometheusPort, "0")
		mp, err := NewMeterProvider(context.Background(), new(Counts), 10, "")
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

// TestPrometheusEndpointServesTheCounts: with --prometheus-address (or
// OTEL_METRICS_EXPORTER=prometheus) the counts are served in the Prometheus
// text format under the translated SDK names, beside OTLP, and a bad
// address or port is refused before anything listens.
func TestPrometheusEndpointServesTheCounts(t *testing.T) {
	t.Setenv(EnvTracesExporter, "none")
	t.Setenv(EnvMetricsExporter, "")
	var counts Counts
	counts.AddRecorded(12)
	counts.Add(Exported, 9)
	counts.Add(QueueFull, 2)
	counts.Add(RingBufferFull, 5)

	m, err := NewMeterProvider(context.Background(), &counts, 77, "127.0.0.1:0")
	require.NoError(t, err)
	require.NotNil(t, m)
	require.NotNil(t, m.PrometheusAddr())
	resp, err := http.Get("http://" + m.PrometheusAddr().String() + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var samples []string // name{labels} value, without scope labels
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "otel_sdk_") || strings.HasPrefix(line, "offsetdb_") {
			samples = append(samples, line)
		}
	}
	text := strings.Join(samples, "\n")
	for _, want := range []string{
		`otel_sdk_span_started_total{`, `otel_span_sampling_result="RECORD_AND_SAMPLE"} 12`,
		`otel_sdk_exporter_span_exported_total{`,
		`error_type="ring_buffer_full"`,
	} {
		assert.Contains(t, text, want)
	}
	assert.Regexp(t, `otel_sdk_processor_span_processed_total\{[^}]*error_type="queue_full"[^}]*\} 2\n`, text+"\n")
	assert.Regexp(t, `otel_sdk_processor_span_queue_capacity\{[^}]*\} 77\n`, text+"\n")
	assert.Regexp(t, `otel_sdk_processor_span_queue_size\{[^}]*\} 1\n`, text+"\n", "12 recorded, 9 exported, 2 dropped")
	assert.Regexp(t, `otel_sdk_exporter_span_exported_total\{[^}]*\} 9\n`, text+"\n")
	assert.Regexp(t, `offsetdb_tracer_event_lost_(event_)?total\{[^}]*error_type="ring_buffer_full"[^}]*\} 5\n`, text+"\n")
	require.NoError(t, m.Shutdown(context.Background()))
	_, err = http.Get("http://" + m.PrometheusAddr().String() + "/metrics")
	assert.Error(t, err, "the endpoint closes at shutdown")

	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "")
	m, err = NewMeterProvider(context.Background(), &counts, 0, "127.0.0.1:0")
	require.NoError(t, err)
	resp, err = http.Get("http://" + m.PrometheusAddr().String() + "/metrics")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Regexp(t, fmt.Sprintf(`\notel_sdk_processor_span_queue_capacity\{[^}]*\} %d\n`, DefaultMaxQueue), string(body), "the default buffer's size")
	require.NoError(t, m.Shutdown(context.Background()))

	_, err = NewMeterProvider(context.Background(), &counts, 77, "no-port")
	assert.ErrorIs(t, err, ErrBadSetting)
	assert.ErrorContains(t, err, `--prometheus-address "no-port"`)
	t.Setenv(EnvMetricsExporter, "prometheus")
	t.Setenv(EnvPrometheusPort, "http")
	_, err = NewMeterProvider(context.Background(), &counts, 77, "")
	assert.ErrorContains(t, err, `OTEL_EXPORTER_PROMETHEUS_PORT="http"`)
	assert.ErrorContains(t, Check(), `OTEL_EXPORTER_PROMETHEUS_PORT="http"`)

	// The port is taken: the error says which address and how to choose another.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	_, err = NewMeterProvider(context.Background(), &counts, 77, ln.Addr().String())
	assert.ErrorContains(t, err, "serve metrics for Prometheus on "+ln.Addr().String())
}
