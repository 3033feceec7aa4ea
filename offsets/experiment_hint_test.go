package offsets

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExperimentShardNamesTheCommandForAnUntrackedField: a GOEXPERIMENT
// shard generated before a field was tracked says how to regenerate it,
// not "add it to the field set" (it is in the field set already).
func TestExperimentShardNamesTheCommandForAnUntrackedField(t *testing.T) {
	db, err := OpenDir("../data")
	require.NoError(t, err)
	s, err := db.Shard("std+boringcrypto")
	require.NoError(t, err)
	id, err := ParseFieldID("runtime.hmap.B")
	require.NoError(t, err)
	if _, tracked := s.Fields[id.String()]; tracked {
		t.Skip("SKIP (not counted): the boringcrypto shard tracks runtime.hmap.B now; nothing to hint")
	}
	_, err = s.Lookup("go1.26.11", "amd64", id)
	assert.ErrorIs(t, err, ErrUnknownField)
	assert.ErrorContains(t, err, "run offsetgen generate --goexperiment boringcrypto --versions 1.26.11 --arch amd64 --out DIR")
}
