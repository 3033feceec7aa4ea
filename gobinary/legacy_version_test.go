package gobinary

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestVersionStringPattern: the values runtime.buildVersion takes, including
// the old BoringCrypto fork's goX.Y.ZbN, are recognised in a binary without
// build information (Go 1.12: the version is found by scanning); text that
// merely starts like one is not.
func TestVersionStringPattern(t *testing.T) {
	for _, s := range []string{"go1.12", "go1.12.17", "go1.12.17b7", "go1.16b4", "go1.13rc1", "go1.17.13 X:noregabi", "go1.24.1-X:boringcrypto", "devel go1.25-abc"} {
		assert.True(t, versionString.MatchString(s), s)
	}
	for _, s := range []string{"go1.12.17b", "go1.x", "go1.12.17 and more", "go2.0"} {
		assert.False(t, versionString.MatchString(s), s)
	}
}
