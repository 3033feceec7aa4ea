package offsets

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func openShards(t *testing.T, shards ...*Shard) *DB {
	t.Helper()
	dir := t.TempDir()
	for _, s := range shards {
		require.NoError(t, WriteShard(dir, s))
	}
	if len(shards) == 0 {
		require.NoError(t, WriteShard(dir, NewTable("example.com/placeholder", nil).Shard()))
	}
	db, err := OpenDir(dir)
	require.NoError(t, err)
	return db
}

func TestDiffReportsAddedRemovedAndChanged(t *testing.T) {
	fields := []FieldID{fGoid, fMethod}
	method := Value{Offset: 0, Size: 16, Type: "string"}
	old := shardOf(t, fields, map[string][]Build{"amd64": {
		ok("go1.22.0", map[FieldID]Value{fGoid: goid(152), fMethod: method}),
		unavailable("go1.22.1"),
		failed("go1.22.2"),
		ok("go1.22.3", map[FieldID]Value{fGoid: goid(152), fMethod: method}),
	}})
	cur := shardOf(t, fields, map[string][]Build{"amd64": {
		ok("go1.22.0", map[FieldID]Value{fGoid: goid(160), fMethod: method}),
		unavailable("go1.22.1"),
		ok("go1.22.2", map[FieldID]Value{fGoid: goid(152), fMethod: method}),
		ok("go1.22.4", map[FieldID]Value{fGoid: goid(152)}),
	}, "arm64": {failed("go1.22.4")}})

	d, err := DiffShards(old, cur)
	require.NoError(t, err)
	assert.Equal(t, []VersionStatus{
		{Arch: "amd64", Version: "go1.22.4", Status: StatusOK},
		{Arch: "arm64", Version: "go1.22.4", Status: StatusFailed, Reason: "compile: boom"},
	}, d.AddedVersions)
	assert.Equal(t, []VersionStatus{{Arch: "amd64", Version: "go1.22.3", Status: StatusOK}}, d.RemovedVersions)
	assert.Equal(t, []StatusChange{{Arch: "amd64", Version: "go1.22.2", Old: StatusFailed, New: StatusOK}}, d.StatusChanges)
	old152, new160 := goid(152), goid(160)
	assert.Equal(t, []ValueChange{{Arch: "amd64", Version: "go1.22.0", Field: fGoid.String(), Old: &old152, New: &new160}}, d.ValueChanges)
	assert.False(t, d.Empty())
}

func TestDiffOfEqualDatabasesIsEmpty(t *testing.T) {
	s := sampleTable(t).Shard()
	d, err := DiffDBs(openShards(t, s), openShards(t, s))
	require.NoError(t, err)
	assert.True(t, d.Empty())
	assert.Empty(t, d.Modules)
}

func TestDiffNewModuleListsItsVersions(t *testing.T) {
	d, err := DiffDBs(openShards(t), openShards(t, sampleTable(t).Shard(), NewTable("example.com/placeholder", nil).Shard()))
	require.NoError(t, err)
	require.Len(t, d.Modules, 1)
	assert.True(t, d.Modules[0].Added)
	assert.Len(t, d.Modules[0].AddedVersions, 6)
	assert.False(t, d.HasValueChanges())
}

func TestDiffReportsFieldSetChanges(t *testing.T) {
	old := shardOf(t, []FieldID{fGoid}, map[string][]Build{"amd64": {ok("go1.22.0", map[FieldID]Value{fGoid: goid(152)})}})
	cur := shardOf(t, []FieldID{fMethod}, map[string][]Build{"amd64": {ok("go1.22.0", map[FieldID]Value{fMethod: {Size: 16, Type: "string"}})}})
	d, err := DiffShards(old, cur)
	require.NoError(t, err)
	assert.Equal(t, []string{fMethod.String()}, d.AddedFields)
	assert.Equal(t, []string{fGoid.String()}, d.RemovedFields)
	assert.Empty(t, d.ValueChanges)
}
