package generate

import (
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/offsets"
)

// TestLoadTableRebuildsOnlyTheVersionsAnAddedBoundedFieldAppliesTo writes a
// shard for one field set, then loads it for that set plus fields bound to
// go1.27 (only go1.27 builds are dropped) and plus an unbound field (every
// build is dropped).
func TestLoadTableRebuildsOnlyTheVersionsAnAddedBoundedFieldAppliesTo(t *testing.T) {
	parse := func(text string) *fieldset.Set {
		s, err := fieldset.ParseModule(offsets.StdModule, strings.NewReader(text))
		require.NoError(t, err)
		return s
	}
	old := parse("net/http.Request.Method\n")
	id := old.Fields[0]
	table := offsets.NewTable(offsets.StdModule, old.Fields)
	for _, v := range []string{"go1.26.0", "go1.27.0", "go1.27.1"} {
		for _, arch := range []string{"amd64", "arm64"} {
			require.NoError(t, table.Set(arch, offsets.Build{
				Coverage: offsets.Coverage{Version: v, Status: offsets.StatusOK, Toolchain: v},
				Values:   map[offsets.FieldID]offsets.Value{id: {Offset: 0, Size: 16, Type: "string"}}}))
		}
	}
	dir := t.TempDir()
	require.NoError(t, offsets.WriteShard(dir, table.Shard()))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	same, err := LoadTable(dir, old, log)
	require.NoError(t, err)
	assert.Len(t, same.Builds["amd64"], 3, "an unchanged field set keeps every build")

	bounded := parse("net/http.Request.Method\n" +
		"net/http/internal/http2.ServerRequest.Method >=go1.27\n" +
		"net/http/internal/http2.ServerRequest.URL >=go1.27\n")
	got, err := LoadTable(dir, bounded, log)
	require.NoError(t, err)
	assert.Equal(t, bounded.Fields, got.Fields, "the table tracks the new field set")
	for _, arch := range []string{"amd64", "arm64"} {
		assert.Contains(t, got.Builds[arch], "go1.26.0", arch)
		assert.NotContains(t, got.Builds[arch], "go1.27.0", arch)
		assert.NotContains(t, got.Builds[arch], "go1.27.1", arch)
	}
	assert.Equal(t, offsets.Value{Offset: 0, Size: 16, Type: "string"}, got.Builds["amd64"]["go1.26.0"].Values[id])
	assert.Equal(t, offsets.FieldSetHash(bounded.Fields), got.Shard().FieldSet)

	// A second bounded addition on the shard written for bounded: only go1.27 again.
	require.NoError(t, offsets.WriteShard(dir, got.Shard()))
	again := parse("net/http.Request.Method\n" +
		"net/http/internal/http2.ServerRequest.Method >=go1.27\n" +
		"net/http/internal/http2.ServerRequest.URL >=go1.27\n" +
		"net/http/internal/http2.serverConn.conn >=go1.27\n")
	got, err = LoadTable(dir, again, log)
	require.NoError(t, err)
	assert.Contains(t, got.Builds["amd64"], "go1.26.0")
	assert.Len(t, got.Builds["amd64"], 1)

	// Two bounds: the versions either allows.
	require.NoError(t, offsets.WriteShard(dir, table.Shard()))
	got, err = LoadTable(dir, parse("net/http.Request.Method\nnet/http.Request.Pattern >=go1.27.1\nnet/http.conn.hijackedv >=go1.27.0,<go1.27.1\n"), log)
	require.NoError(t, err)
	assert.Equal(t, []string{"go1.26.0"}, slices.Collect(maps.Keys(got.Builds["arm64"])))

	for name, text := range map[string]string{
		"an unbound field":           "net/http.Request.Method\nnet/http.conn.hijackedv\n",
		"a bound field and a gone":   "net/http/internal/http2.ServerRequest.Method >=go1.27\n",
		"a bound and an unbound one": "net/http.Request.Method\nnet/http.Request.Pattern >=go1.22\nnet/http.conn.hijackedv\n",
	} {
		got, err := LoadTable(dir, parse(text), log)
		require.NoError(t, err, name)
		assert.Empty(t, got.Builds, "%s: every version is rebuilt", name)
	}
}
