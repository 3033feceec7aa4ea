package offsets

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var fStream = FieldID{"example.com/rpc/transport", "stream", "ctx"}

// goDependentTable: v1.1.0 and v1.2.0 of a module laid out differently by
// go1.21.13 and go1.26.8 (the struct embeds a standard-library type that
// grew); v1.0.0 and v1.3.0 the same with both.
func goDependentTable(t *testing.T) *Table {
	t.Helper()
	tb := NewTable("example.com/rpc", []FieldID{fStream})
	plain := Value{Offset: 8, Size: 16, Type: "context.Context"}
	old, cur := Value{Offset: 24, Size: 16, Type: "context.Context"}, Value{Offset: 32, Size: 16, Type: "context.Context"}
	require.NoError(t, tb.Set("amd64", ok("v1.0.0", map[FieldID]Value{fStream: plain})))
	for _, v := range []string{"v1.1.0", "v1.2.0"} {
		byGo := map[FieldID][]GoValue{fStream: {{Go: "<=go1.21.13", Value: old}, {Go: ">=go1.26.8", Value: cur}}}
		require.NoError(t, tb.Set("amd64", Build{Coverage: Coverage{Version: v, Status: StatusOK, Toolchain: "go1.26.8"},
			Values: map[FieldID]Value{}, GoValues: byGo}))
	}
	require.NoError(t, tb.Set("amd64", ok("v1.3.0", map[FieldID]Value{fStream: plain})))
	return tb
}

func TestShardRecordsGoDependentValuesAsBoundedRanges(t *testing.T) {
	s := goDependentTable(t).Shard()
	require.NoError(t, s.Check())
	ranges := s.Fields[fStream.String()]["amd64"]
	require.Len(t, ranges, 4)
	assert.Equal(t, Range{From: "v1.0.0", To: "v1.0.0", Value: Value{Offset: 8, Size: 16, Type: "context.Context"}}, ranges[0])
	assert.Equal(t, Range{From: "v1.1.0", To: "v1.2.0", Go: "<=go1.21.13", Value: Value{Offset: 24, Size: 16, Type: "context.Context"}}, ranges[1])
	assert.Equal(t, Range{From: "v1.1.0", To: "v1.2.0", Go: ">=go1.26.8", Value: Value{Offset: 32, Size: 16, Type: "context.Context"}}, ranges[2])
	assert.Equal(t, "v1.3.0", ranges[3].From)

	data, err := s.Encode()
	require.NoError(t, err)
	assert.Contains(t, string(data), `"go": "\u003e=go1.26.8"`, "encoding/json escapes < and >; readers decode it")
	back, err := DecodeShard(data)
	require.NoError(t, err)
	tb, err := back.Expand()
	require.NoError(t, err)
	assert.Equal(t, goDependentTable(t).Builds, tb.Builds, "Expand inverts Shard")

	std, err := sampleTable(t).Shard().Encode()
	require.NoError(t, err)
	assert.NotContains(t, string(std), `"go"`, "std shards never carry Go bounds")
}

func TestLookupTakesTheTargetsGoReleaseIntoAccount(t *testing.T) {
	s := goDependentTable(t).Shard()
	r, err := s.Lookup("v1.1.0", "amd64", fStream, WithGoVersion("1.26.8"))
	require.NoError(t, err)
	assert.Equal(t, uint64(32), r.Offset)
	assert.Equal(t, ">=go1.26.8", r.Provenance.Go)
	assert.Contains(t, r.Provenance.String(), "targets built with >=go1.26.8")

	r, err = s.Lookup("v1.2.0", "amd64", fStream, WithGoVersion("go1.20.3"))
	require.NoError(t, err)
	assert.Equal(t, uint64(24), r.Offset)

	_, err = s.Lookup("v1.1.0", "amd64", fStream)
	require.ErrorIs(t, err, ErrGoDependent, "without the target's Go release there is no answer")
	assert.Contains(t, err.Error(), "<=go1.21.13; >=go1.26.8")
	_, err = s.Lookup("v1.1.0", "amd64", fStream, WithGoVersion("go1.24.0"))
	require.ErrorIs(t, err, ErrGoDependent, "a release between the two toolchains built is not guessed")

	r, err = s.Lookup("v1.3.0", "amd64", fStream, WithGoVersion("go1.24.0"))
	require.NoError(t, err, "values that do not depend on the Go release answer for every one")
	assert.Equal(t, uint64(8), r.Offset)
	assert.Empty(t, r.Provenance.Go)
}

func TestGoBoundsAreRejectedWhereTheyCannotBe(t *testing.T) {
	v := Value{Offset: 1, Size: 1, Type: "bool"}
	two := []GoValue{{Go: "<=go1.21.13", Value: v}, {Go: ">=go1.26.8", Value: v}}
	std := NewTable(StdModule, []FieldID{fGoid})
	assert.Error(t, std.Set("amd64", Build{Coverage: Coverage{Version: "go1.22.0", Status: StatusOK}, GoValues: map[FieldID][]GoValue{fGoid: two}}))
	m := NewTable("example.com/rpc", []FieldID{fStream})
	for name, gvs := range map[string][]GoValue{
		"not canonical": {{Go: ">=1.26.8", Value: v}, two[0]},
		"no bound":      {{Value: v}, two[0]},
	} {
		assert.Error(t, m.Set("amd64", Build{Coverage: Coverage{Version: "v1.0.0", Status: StatusOK}, GoValues: map[FieldID][]GoValue{fStream: gvs}}), name)
	}
	assert.Error(t, m.Set("amd64", Build{Coverage: Coverage{Version: "v1.0.0", Status: StatusOK},
		Values: map[FieldID]Value{fStream: v}, GoValues: map[FieldID][]GoValue{fStream: two}}), "a value and values per Go release")

	s := sampleTable(t).Shard()
	s.Fields[fGoid.String()]["amd64"][0].Go = ">=go1.22.0"
	err := s.Check()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "standard-library values cannot depend on the Go release")
}

func TestMergeAndDiffCompareValuesPerGoRelease(t *testing.T) {
	a := goDependentTable(t)
	b := goDependentTable(t)
	b.Builds["amd64"]["v1.1.0"].GoValues[fStream][1] = GoValue{Go: ">=go1.26.8", Value: Value{Offset: 40, Size: 16, Type: "context.Context"}}
	_, _, err := Merge([]MergeSource{{Name: "a", Shard: a.Shard()}, {Name: "b", Shard: b.Shard()}})
	require.ErrorIs(t, err, ErrConflict)
	assert.Contains(t, err.Error(), "40 (16 bytes, context.Context) for >=go1.26.8")

	md, err := DiffShards(goDependentTable(t).Shard(), b.Shard())
	require.NoError(t, err)
	require.Len(t, md.ValueChanges, 1)
	assert.Equal(t, "v1.1.0", md.ValueChanges[0].Version)
	assert.True(t, strings.Contains(FormatValues(md.ValueChanges[0].New, md.ValueChanges[0].NewByGo), "40 (16 bytes"))
}
