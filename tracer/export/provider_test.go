package export_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/export"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/httpconv"
	"github.com/offsetdb/offsetdb/tracer/otlptest"
	"github.com/offsetdb/offsetdb/tracer/spans"
)

// otelEnv lists the variables tests clear so that the developer's or CI's
// environment cannot leak into them.
var otelEnv = []string{
	"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
	"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
	"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_SERVICE_NAME",
	"OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
}

// setEnv clears the OpenTelemetry environment, then sets env.
func setEnv(t testing.TB, env map[string]string) {
	t.Helper()
	for _, k := range otelEnv {
		t.Setenv(k, "")
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

var (
	rootEvent = httpconv.HTTPEvent{
		Kind: trace.SpanKindServer, Start: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
		End:     time.Date(2026, 1, 2, 3, 4, 5, 223456789, time.UTC),
		TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:  trace.SpanID{1, 1, 1, 1, 1, 1, 1, 1}, Method: "GET", Host: "shop.example", Path: "/items/1",
		Route: "GET /items/{id}", RemoteAddr: "10.0.0.1:4000", ProtoMajor: 1, ProtoMinor: 1, StatusCode: 200,
	}
	childEvent = httpconv.HTTPEvent{
		Kind: trace.SpanKindClient, Start: rootEvent.Start.Add(time.Millisecond), End: rootEvent.Start.Add(2 * time.Millisecond),
		TraceID: rootEvent.TraceID, SpanID: trace.SpanID{2, 2, 2, 2, 2, 2, 2, 2}, ParentSpanID: rootEvent.SpanID,
		Method: "GET", Scheme: "http", Host: "stock:8080", Path: "/stock/1",
	}
)

// recordAndShutdown records the root and child events through tp and shuts
// tp down, which must flush them.
func recordAndShutdown(t *testing.T, tp *sdktrace.TracerProvider) {
	t.Helper()
	rec, err := spans.NewRecorder(tp)
	require.NoError(t, err)
	for _, ev := range []httpconv.HTTPEvent{rootEvent, childEvent} {
		s, err := ev.Span()
		require.NoError(t, err)
		require.NoError(t, rec.Record(&s))
	}
	require.NoError(t, tp.Shutdown(context.Background()))
}

func TestNewTracerProviderChoosesExportersFromEnvironment(t *testing.T) {
	tests := []struct {
		name                            string
		env                             map[string]string // "{http}" and "{grpc}" stand for the receivers' endpoints
		wantHTTP, wantGRPC, wantConsole int
	}{
		{
			name:     "default is otlp over http/protobuf",
			env:      map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "{http}"},
			wantHTTP: 2,
		},
		{
			name:     "traces endpoint is used as is",
			env:      map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "{http}/v1/traces"},
			wantHTTP: 2,
		},
		{
			name:     "grpc protocol",
			env:      map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "{grpc}"},
			wantGRPC: 2,
		},
		{
			name: "traces protocol overrides the general one (grpc)",
			env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
				"OTEL_EXPORTER_OTLP_ENDPOINT": "{grpc}"},
			wantGRPC: 2,
		},
		{
			name: "traces protocol overrides the general one (http/protobuf)",
			env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
				"OTEL_EXPORTER_OTLP_ENDPOINT": "{http}"},
			wantHTTP: 2,
		},
		{
			name:        "console",
			env:         map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_EXPORTER_OTLP_ENDPOINT": "{http}"},
			wantConsole: 2,
		},
		{
			name:        "values are case-insensitive",
			env:         map[string]string{"OTEL_TRACES_EXPORTER": " Console ", "OTEL_EXPORTER_OTLP_ENDPOINT": "{http}"},
			wantConsole: 2,
		},
		{
			name:     "list of exporters",
			env:      map[string]string{"OTEL_TRACES_EXPORTER": "otlp,console,otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "{http}"},
			wantHTTP: 2, wantConsole: 2,
		},
		{
			name: "none",
			env:  map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "{http}"},
		},
		{
			name: "sdk disabled",
			env:  map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "otlp,console", "OTEL_EXPORTER_OTLP_ENDPOINT": "{http}"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			httpReceiver, grpcReceiver := otlptest.NewHTTP(t), otlptest.NewGRPC(t)
			env := map[string]string{}
			for k, v := range tt.env {
				v = strings.ReplaceAll(v, "{http}", httpReceiver.Endpoint())
				env[k] = strings.ReplaceAll(v, "{grpc}", grpcReceiver.Endpoint())
			}
			setEnv(t, env)
			var console bytes.Buffer

			tp, err := export.NewTracerProvider(context.Background(), export.Options{ServiceName: "shop", Console: &console})
			require.NoError(t, err)
			recordAndShutdown(t, tp)

			for _, r := range []struct {
				name     string
				receiver *otlptest.Receiver
				want     int
			}{{"http", httpReceiver, tt.wantHTTP}, {"grpc", grpcReceiver, tt.wantGRPC}} {
				if r.want > 0 {
					got := r.receiver.WaitForSpans(t, r.want, 10*time.Second)
					assert.Len(t, got, r.want, "%s receiver", r.name)
				} else {
					assert.Empty(t, r.receiver.Spans(), "%s receiver", r.name)
				}
			}
			lines := strings.Split(strings.TrimSuffix(console.String(), "\n"), "\n")
			if tt.wantConsole == 0 {
				assert.Empty(t, console.String(), "console")
			} else {
				assert.Len(t, lines, tt.wantConsole, "console lines")
			}
		})
	}
}

func TestNewTracerProviderRejectsUnsupportedSettings(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr error
		wantMsg string
	}{
		{"unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "bogus"}, export.ErrUnknownExporter, `unknown exporter "bogus"`},
		{"unknown exporter in list", map[string]string{"OTEL_TRACES_EXPORTER": "otlp,bogus"}, export.ErrUnknownExporter, `"bogus"`},
		{"spec exporter not provided", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, export.ErrUnknownExporter, `"zipkin" is not provided`},
		{"none with others", map[string]string{"OTEL_TRACES_EXPORTER": "none,console"}, export.ErrUnknownExporter, "none cannot be combined"},
		{"unknown protocol", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "bogus"}, export.ErrUnknownProtocol, `OTEL_EXPORTER_OTLP_PROTOCOL="bogus"`},
		{"unknown traces protocol", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "udp"},
			export.ErrUnknownProtocol, `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="udp"`},
		{"http/json is not spoken", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, export.ErrUnknownProtocol, "http/json"},
		{"malformed resource attributes", map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "novalue"}, nil, "OTEL_RESOURCE_ATTRIBUTES"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			tp, err := export.NewTracerProvider(context.Background(), export.Options{ServiceName: "shop"})
			require.Error(t, err)
			assert.Nil(t, tp)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
			}
			assert.Contains(t, err.Error(), tt.wantMsg)
		})
	}
}

func TestNewTracerProviderPutsServiceAndSDKOnTheResource(t *testing.T) {
	tests := []struct {
		name        string
		serviceName string
		pid         int
		executable  string
		env         map[string]string
		want        map[string]any
	}{
		{
			name:        "service name from options",
			serviceName: "shop",
			want:        map[string]any{"service.name": "shop"},
		},
		{
			name: "no service name at all",
			want: map[string]any{"service.name": "unknown_service"},
		},
		{
			name:        "the traced process",
			serviceName: "shop",
			pid:         4242,
			executable:  "/srv/bin/shop",
			want: map[string]any{"service.name": "shop", "process.pid": int64(4242),
				"process.executable.path": "/srv/bin/shop", "process.executable.name": "shop"},
		},
		{
			name:        "resource attributes override options",
			serviceName: "shop",
			env:         map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,deployment.environment.name=staging,team=a%20b"},
			want:        map[string]any{"service.name": "from-attrs", "deployment.environment.name": "staging", "team": "a b"},
		},
		{
			name:        "service name variable overrides both",
			serviceName: "shop",
			env: map[string]string{"OTEL_SERVICE_NAME": "checkout",
				"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,service.version=1.2.3"},
			want: map[string]any{"service.name": "checkout", "service.version": "1.2.3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			receiver := otlptest.NewHTTP(t)
			env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.Endpoint()}
			for k, v := range tt.env {
				env[k] = v
			}
			setEnv(t, env)
			tp, err := export.NewTracerProvider(context.Background(), export.Options{ServiceName: tt.serviceName, PID: tt.pid, Executable: tt.executable})
			require.NoError(t, err)
			recordAndShutdown(t, tp)

			got := receiver.WaitForSpans(t, 2, 10*time.Second)
			for _, s := range got {
				for k, v := range tt.want {
					assert.Equal(t, v, s.Resource[k], "resource %s", k)
				}
				assert.Equal(t, "go", s.Resource["telemetry.sdk.language"])
				assert.Equal(t, "opentelemetry", s.Resource["telemetry.sdk.name"])
				assert.NotEmpty(t, s.Resource["telemetry.sdk.version"])
			}
		})
	}
}

// TestDestinationNamesTheDefaultEndpoint: with nothing configured the first
// log line names the OTLP specification's default endpoint and how to
// change it; a configured one is named with its variable.
func TestDestinationNamesTheDefaultEndpoint(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want []any
	}{
		{nil, []any{"exporters", "otlp", "protocol", "http/protobuf", "endpoint", "http://localhost:4318/v1/traces", "endpoint_from", "default",
			"hint", "no endpoint configured: set OTEL_EXPORTER_OTLP_ENDPOINT, or OTEL_TRACES_EXPORTER=console to print the spans"}},
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, []any{"exporters", "otlp", "protocol", "grpc", "endpoint", "http://localhost:4317", "endpoint_from", "default",
			"hint", "no endpoint configured: set OTEL_EXPORTER_OTLP_ENDPOINT, or OTEL_TRACES_EXPORTER=console to print the spans"}},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318/"}, []any{"exporters", "otlp", "protocol", "http/protobuf",
			"endpoint", "https://collector:4318/v1/traces", "endpoint_from", "OTEL_EXPORTER_OTLP_ENDPOINT"}},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, []any{"exporters", "console"}},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none"}, []any{"exporters", "none"}},
	} {
		setEnv(t, tt.env)
		got, err := export.Destination()
		require.NoError(t, err)
		assert.Equal(t, tt.want, got, "%v", tt.env)
	}
}
