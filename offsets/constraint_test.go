package offsets

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConstraintAllowsVersionsInBounds(t *testing.T) {
	tests := []struct {
		module, constraint string
		allowed, denied    []string
	}{
		{"google.golang.org/grpc", ">=v1.40.0", []string{"v1.40.0", "v1.60.1"}, []string{"v1.39.9", "v1.40.0-rc.1"}},
		{"google.golang.org/grpc", ">= 1.40.0, <v1.60.0", []string{"v1.59.0"}, []string{"v1.60.0", "v1.30.0"}},
		{"google.golang.org/grpc", "v1.2.3", []string{"v1.2.3"}, []string{"v1.2.4"}},
		{"google.golang.org/grpc", "", []string{"v0.0.1", DevelVersion}, nil},
		{StdModule, "<go1.21", []string{"go1.20.14", "go1.12"}, []string{"go1.21.0"}},
		{StdModule, ">1.22", []string{"go1.22.1"}, []string{"go1.22.0", "go1.21.5"}},
	}
	for _, tt := range tests {
		c, err := ParseConstraint(tt.module, tt.constraint)
		require.NoError(t, err, tt.constraint)
		for _, v := range tt.allowed {
			assert.True(t, c.Allows(v), "%s allows %s", tt.constraint, v)
		}
		for _, v := range tt.denied {
			assert.False(t, c.Allows(v), "%s denies %s", tt.constraint, v)
		}
	}
	c, err := ParseConstraint("m", ">=1.40.0,<v2.0.0")
	require.NoError(t, err)
	assert.Equal(t, ">=v1.40.0,<v2.0.0", c.String())
}

func TestParseConstraintRejectsNonsense(t *testing.T) {
	for _, s := range []string{">=", ">=banana", "<(devel)", "~>1.2", ">=v1.0.0,"} {
		_, err := ParseConstraint("example.com/m", s)
		assert.Error(t, err, s)
	}
}
