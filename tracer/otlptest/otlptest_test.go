package otlptest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/offsetdb/offsetdb/tracer/otlptest"
)

var start = time.Date(2026, 5, 6, 7, 8, 9, 10, time.UTC)

// exportRequest returns a request with one client span.
func exportRequest() ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "shop")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("scope")
	ss.SetSchemaUrl("https://opentelemetry.io/schemas/1.43.0")
	s := ss.Spans().AppendEmpty()
	s.SetName("GET")
	s.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	s.SetSpanID(pcommon.SpanID{1, 1, 1, 1, 1, 1, 1, 1})
	s.SetParentSpanID(pcommon.SpanID{2, 2, 2, 2, 2, 2, 2, 2})
	s.SetKind(ptrace.SpanKindClient)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Second)))
	s.Attributes().PutInt("http.response.status_code", 503)
	s.Status().SetCode(ptrace.StatusCodeError)
	s.Status().SetMessage("boom")
	return ptraceotlp.NewExportRequestFromTraces(td)
}

var wantSpan = otlptest.Span{
	Name: "GET", TraceID: "0102030405060708090a0b0c0d0e0f10", SpanID: "0101010101010101",
	ParentSpanID: "0202020202020202", Kind: "client", Start: start, End: start.Add(time.Second),
	Attributes: map[string]any{"http.response.status_code": int64(503)}, StatusCode: "error", StatusMessage: "boom",
	Resource: map[string]any{"service.name": "shop"}, Scope: "scope", SchemaURL: "https://opentelemetry.io/schemas/1.43.0",
}

func TestHTTPReceiverDecodesProtobufAndJSON(t *testing.T) {
	proto, err := exportRequest().MarshalProto()
	require.NoError(t, err)
	json, err := exportRequest().MarshalJSON()
	require.NoError(t, err)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write(proto)
	require.NoError(t, zw.Close())

	tests := []struct {
		name, contentType, encoding string
		body                        []byte
		wantStatus                  int
	}{
		{"protobuf", "application/x-protobuf", "", proto, http.StatusOK},
		{"gzip protobuf", "application/x-protobuf", "gzip", zipped.Bytes(), http.StatusOK},
		{"json", "application/json; charset=utf-8", "", json, http.StatusOK},
		{"garbage", "application/x-protobuf", "", []byte("\xff\xff\xff"), http.StatusBadRequest},
		{"unknown content type", "text/plain", "", proto, http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := otlptest.NewHTTP(t)
			req, err := http.NewRequest(http.MethodPost, r.TracesURL(), bytes.NewReader(tt.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", tt.contentType)
			if tt.encoding != "" {
				req.Header.Set("Content-Encoding", tt.encoding)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, tt.wantStatus, resp.StatusCode)
			if tt.wantStatus != http.StatusOK {
				assert.Empty(t, r.Spans())
				return
			}
			assert.Equal(t, []otlptest.Span{wantSpan}, r.WaitForSpans(t, 1, 5*time.Second))
		})
	}
}

func TestGRPCReceiverDecodesExports(t *testing.T) {
	r := otlptest.NewGRPC(t)
	conn, err := grpc.NewClient(strings.TrimPrefix(r.Endpoint(), "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_, err = ptraceotlp.NewGRPCClient(conn).Export(context.Background(), exportRequest())
	require.NoError(t, err)
	assert.Equal(t, []otlptest.Span{wantSpan}, r.WaitForSpans(t, 1, 5*time.Second))
}
