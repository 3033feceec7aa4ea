package toolchain

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/goversion"
)

// TestRealProxyToolchain checks the assumptions this package makes about the
// real module proxy ($GOPROXY or proxy.golang.org) and its checksum database,
// without downloading a toolchain (each is ~75 MB). It needs the network and
// is skipped under -short, or when the proxy cannot be reached at all.
func TestRealProxyToolchain(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the network: talks to the real module proxy")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p := &Proxy{URL: ProxyURLFromEnv(), ConfigDir: t.TempDir()}
	since := goversion.MustParse("go1.26")

	start := time.Now()
	rels, err := p.Releases(ctx, since)
	if errors.Is(err, ErrUnreachable) {
		t.Skipf("SKIPPING real-proxy test: %v", err)
	}
	require.NoError(t, err)
	t.Logf("Releases(%s) from %s: %d releases in %v", since, p.url(), len(rels), time.Since(start))

	var first, newer bool
	for _, r := range rels {
		t.Logf("  %s available=%v %s", r.Version, r.Available, r.Reason)
		switch {
		case r.Version == since && r.Available:
			first = true
		case since.Less(r.Version) && r.Available:
			newer = true
		}
	}
	assert.True(t, first, "go1.26.0 must be available")
	assert.True(t, newer, "some release newer than go1.26.0 must be available")

	sum, err := p.Checksum(ctx, since)
	require.NoError(t, err)
	assert.Regexp(t, `^h1:[A-Za-z0-9+/]{43}=$`, sum)
	t.Logf("checksum database: %s@%s %s", ModulePath, ModuleVersion(since), sum)

	// A second lookup starts from the tree head and tiles saved by the first.
	again, err := p.Checksum(ctx, since)
	require.NoError(t, err)
	assert.Equal(t, sum, again)
}
