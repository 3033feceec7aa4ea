package spans

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSplitHostPortAcceptsMissingAndInvalidPorts(t *testing.T) {
	tests := []struct {
		in       string
		wantHost string
		wantPort int
	}{
		{"", "", 0},
		{"example.com", "example.com", 0},
		{"example.com:8080", "example.com", 8080},
		{"example.com:", "example.com", 0},
		{"example.com:http", "example.com", 0},
		{"example.com:70000", "example.com", 0},
		{"[2001:db8::1]:443", "2001:db8::1", 443},
		{"[2001:db8::1]", "2001:db8::1", 0},
		{"2001:db8::1", "2001:db8::1", 0},
	}
	for _, tt := range tests {
		host, port := SplitHostPort(tt.in)
		assert.Equal(t, tt.wantHost, host, "host of %q", tt.in)
		assert.Equal(t, tt.wantPort, port, "port of %q", tt.in)
	}
}
