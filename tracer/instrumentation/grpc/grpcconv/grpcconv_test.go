package grpcconv

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTargetHostPortReadsEveryTargetSyntax(t *testing.T) {
	for _, tt := range []struct {
		target string
		host   string
		port   int
	}{
		{"dns:///greeter:50051", "greeter", 50051},
		{"dns://8.8.8.8/greeter:50051", "greeter", 50051},
		{"passthrough:///10.0.0.1:443", "10.0.0.1", 443},
		{"greeter:50051", "greeter", 50051},
		{"[::1]:50051", "::1", 50051},
		{"greeter", "greeter", 0},
		{"unix:///run/app.sock", "/run/app.sock", 0},
		{"unix:app.sock", "app.sock", 0},
		{"greeter:http", "greeter", 0},
		{"", "", 0},
	} {
		host, port := targetHostPort(tt.target)
		assert.Equal(t, tt.host, host, tt.target)
		assert.Equal(t, tt.port, port, tt.target)
	}
}

func TestCodeNameSpellsEveryCode(t *testing.T) {
	assert.Equal(t, "OK", CodeName(0))
	assert.Equal(t, "DEADLINE_EXCEEDED", CodeName(4))
	assert.Equal(t, "UNAUTHENTICATED", CodeName(16))
	assert.Equal(t, "17", CodeName(17))
}
