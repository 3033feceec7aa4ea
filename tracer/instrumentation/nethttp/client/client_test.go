//go:build linux && (amd64 || arm64)

package client

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

// The record is the client's generated type, decoded through package server:
// the test also checks that both objects share one record layout.
func TestDecodeMakesClientSpanAndDefaultsMethodToGET(t *testing.T) {
	r := clientHttpEvent{Kind: 2, Status: 200}
	r.SchemeLen = uint8(copy(r.Scheme[:], "https"))
	r.HostLen = uint8(copy(r.Host[:], "api.example.com"))
	r.PathLen = uint16(copy(r.Path[:], "/v1/things"))
	b, err := binary.Append(nil, binary.NativeEndian, &r)
	require.NoError(t, err)

	ev, err := decodeRecord(b)
	require.NoError(t, err)
	assert.Equal(t, trace.SpanKindClient, ev.Kind)
	assert.Equal(t, "GET", ev.Method)
	assert.Equal(t, "https", ev.Scheme)
	assert.Equal(t, "api.example.com", ev.Host)
	assert.Equal(t, "/v1/things", ev.Path)
	assert.Equal(t, 200, ev.StatusCode)
}
