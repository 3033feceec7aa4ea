package toolchain

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/offsetdb/offsetdb/goversion"
)

func TestProxyURLFromEnvTakesFirstHTTPProxy(t *testing.T) {
	tests := []struct {
		goproxy string
		want    string
	}{
		{"", DefaultProxyURL},
		{"direct", DefaultProxyURL},
		{"off", DefaultProxyURL},
		{"https://proxy.golang.org,direct", "https://proxy.golang.org"},
		{"direct,https://goproxy.corp.example/", "https://goproxy.corp.example"},
		{"http://athens:3000|https://proxy.golang.org", "http://athens:3000"},
	}
	for _, tt := range tests {
		t.Run(tt.goproxy, func(t *testing.T) {
			t.Setenv("GOPROXY", tt.goproxy)
			assert.Equal(t, tt.want, ProxyURLFromEnv())
		})
	}
}

func TestModuleVersionNamesLinuxAMD64Toolchain(t *testing.T) {
	for in, want := range map[string]string{
		"go1.12":    "v0.0.1-go1.12.linux-amd64",
		"go1.12.17": "v0.0.1-go1.12.17.linux-amd64",
		"go1.21.0":  "v0.0.1-go1.21.0.linux-amd64",
		"go1.26rc1": "v0.0.1-go1.26rc1.linux-amd64",
	} {
		assert.Equal(t, want, ModuleVersion(goversion.MustParse(in)), in)
	}
}
