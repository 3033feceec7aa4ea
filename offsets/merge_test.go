package offsets

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func goid(off uint64) Value { return Value{Offset: off, Size: 8, Type: "uint64"} }

func shardOf(t *testing.T, fields []FieldID, builds map[string][]Build) *Shard {
	t.Helper()
	tb := NewTable(StdModule, fields)
	for arch, bs := range builds {
		for _, b := range bs {
			require.NoError(t, tb.Set(arch, b))
		}
	}
	return tb.Shard()
}

func unavailable(v string) Build {
	return Build{Coverage: Coverage{Version: v, Status: StatusUnavailable, Reason: "proxy answered 404"}}
}

func failed(v string) Build {
	return Build{Coverage: Coverage{Version: v, Status: StatusFailed, Toolchain: v, Reason: "compile: boom"}}
}

func TestMergeIsTheUnionOfCoverage(t *testing.T) {
	fields := []FieldID{fGoid}
	a := shardOf(t, fields, map[string][]Build{"amd64": {ok("go1.21.0", map[FieldID]Value{fGoid: goid(152)})}})
	b := shardOf(t, fields, map[string][]Build{
		"amd64": {ok("go1.22.0", map[FieldID]Value{fGoid: goid(152)})},
		"arm64": {unavailable("go1.22.0")},
	})
	got, notes, err := Merge([]MergeSource{{"a", a}, {"b", b}})
	require.NoError(t, err)
	assert.Empty(t, notes)
	require.NoError(t, got.Check())
	assert.Equal(t, []Range{{From: "go1.21.0", To: "go1.22.0", Value: goid(152)}}, got.Fields[fGoid.String()]["amd64"])
	assert.Len(t, got.Coverage["amd64"], 2)
	assert.Len(t, got.Coverage["arm64"], 1)
}

func TestMergeDoesNotDependOnOrder(t *testing.T) {
	fields := []FieldID{fGoid, fMethod}
	method := Value{Offset: 0, Size: 16, Type: "string"}
	srcs := []MergeSource{
		{"s1", shardOf(t, fields, map[string][]Build{"amd64": {ok("go1.22.0", map[FieldID]Value{fGoid: goid(152), fMethod: method}), unavailable("go1.22.1")}})},
		{"s2", shardOf(t, fields, map[string][]Build{"amd64": {failed("go1.22.1"), ok("go1.22.2", map[FieldID]Value{fGoid: goid(160), fMethod: method})}})},
		{"s3", shardOf(t, fields, map[string][]Build{"amd64": {{Coverage: Coverage{Version: "go1.22.1", Status: StatusFailed, Toolchain: "go1.22.1", Reason: "another reason"}}}, "arm64": {unavailable("go1.22.0")}})},
		{"s4", shardOf(t, fields, map[string][]Build{"amd64": {ok("go1.22.0", map[FieldID]Value{fGoid: goid(152), fMethod: method})}})},
	}
	orders := [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}, {1, 3, 0, 2}}
	var want []byte
	for _, order := range orders {
		var in []MergeSource
		for _, i := range order {
			in = append(in, srcs[i])
		}
		s, _, err := Merge(in)
		require.NoError(t, err)
		got, err := s.Encode()
		require.NoError(t, err)
		if want == nil {
			want = got
			continue
		}
		assert.Equal(t, string(want), string(got), "order %v", order)
	}
}

func TestMergeResolvesStatuses(t *testing.T) {
	fields := []FieldID{fGoid}
	okBuild := ok("go1.22.1", map[FieldID]Value{fGoid: goid(152)})
	tests := []struct {
		name     string
		a, b     Build
		want     Status
		wantNote bool
	}{
		{"ok beats unavailable", okBuild, unavailable("go1.22.1"), StatusOK, true},
		{"ok beats failed", failed("go1.22.1"), okBuild, StatusOK, true},
		{"failed beats unavailable", unavailable("go1.22.1"), failed("go1.22.1"), StatusFailed, true},
		{"equal ok builds agree", okBuild, okBuild, StatusOK, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := shardOf(t, fields, map[string][]Build{"amd64": {tt.a}})
			b := shardOf(t, fields, map[string][]Build{"amd64": {tt.b}})
			got, notes, err := Merge([]MergeSource{{"a", a}, {"b", b}})
			require.NoError(t, err)
			require.Len(t, got.Coverage["amd64"], 1)
			assert.Equal(t, tt.want, got.Coverage["amd64"][0].Status)
			assert.Equal(t, tt.wantNote, len(notes) == 1, "notes: %v", notes)
		})
	}
}

func TestMergeConflictNamesBothSources(t *testing.T) {
	fields := []FieldID{fGoid, fPattern}
	a := shardOf(t, fields, map[string][]Build{"amd64": {ok("go1.22.1", map[FieldID]Value{fGoid: goid(152)})}})
	b := shardOf(t, fields, map[string][]Build{"amd64": {ok("go1.22.1", map[FieldID]Value{fGoid: goid(160), fPattern: {Offset: 232, Size: 16, Type: "string"}})}})
	_, _, err := Merge([]MergeSource{{"shard-b", b}, {"shard-a", a}})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrConflict)
	var ce *ConflictError
	require.True(t, errors.As(err, &ce))
	msg := err.Error()
	for _, want := range []string{"std@go1.22.1 (amd64) runtime.g.goid", "152 (8 bytes, uint64) in shard-a", "160 (8 bytes, uint64) in shard-b",
		"net/http.Request.Pattern: absent in shard-a, 232 (16 bytes, string) in shard-b"} {
		assert.Contains(t, msg, want)
	}
}

func TestMergeRefusesDifferentFieldSets(t *testing.T) {
	a := shardOf(t, []FieldID{fGoid}, map[string][]Build{"amd64": {ok("go1.22.1", map[FieldID]Value{fGoid: goid(152)})}})
	b := shardOf(t, []FieldID{fGoid, fMethod}, map[string][]Build{"amd64": {ok("go1.22.2", map[FieldID]Value{fGoid: goid(152)})}})
	_, _, err := Merge([]MergeSource{{"a", a}, {"b", b}})
	require.ErrorIs(t, err, ErrFieldSetMismatch)
	assert.Contains(t, err.Error(), "only in b: [net/http.Request.Method]")
}
