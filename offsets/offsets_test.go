package offsets

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	fMethod  = FieldID{"net/http", "Request", "Method"}
	fPattern = FieldID{"net/http", "Request", "Pattern"}
	fGoid    = FieldID{"runtime", "g", "goid"}
)

func ok(v string, values map[FieldID]Value) Build {
	return Build{Coverage: Coverage{Version: v, Status: StatusOK, Toolchain: v}, Values: values}
}

// sampleTable has five go1.22 releases: go1.22.2 withheld by the proxy,
// goid moving in go1.22.4, Pattern appearing in go1.22.3.
func sampleTable(t *testing.T) *Table {
	t.Helper()
	tb := NewTable(StdModule, []FieldID{fPattern, fMethod, fGoid})
	goid := func(off uint64) Value { return Value{Offset: off, Size: 8, Type: "uint64"} }
	method := Value{Offset: 0, Size: 16, Type: "string"}
	pattern := Value{Offset: 232, Size: 16, Type: "string"}
	require.NoError(t, tb.Set("amd64", ok("go1.22.0", map[FieldID]Value{fMethod: method, fGoid: goid(152)})))
	require.NoError(t, tb.Set("amd64", ok("go1.22.1", map[FieldID]Value{fMethod: method, fGoid: goid(152)})))
	require.NoError(t, tb.Set("amd64", Build{Coverage: Coverage{Version: "go1.22.2", Status: StatusUnavailable, Reason: "proxy answered 403"}}))
	require.NoError(t, tb.Set("amd64", ok("1.22.3", map[FieldID]Value{fMethod: method, fGoid: goid(152), fPattern: pattern})))
	require.NoError(t, tb.Set("amd64", ok("go1.22.4", map[FieldID]Value{fMethod: method, fGoid: goid(160), fPattern: pattern})))
	require.NoError(t, tb.Set("amd64", Build{Coverage: Coverage{Version: "go1.22.5", Status: StatusFailed, Reason: "compile: boom"}}))
	return tb
}

func TestShardCompactsConsecutiveEqualValues(t *testing.T) {
	s := sampleTable(t).Shard()
	assert.Equal(t, []Range{{From: "go1.22.0", To: "go1.22.4", Value: Value{0, 16, "string"}}}, s.Fields[fMethod.String()]["amd64"])
	assert.Equal(t, []Range{
		{From: "go1.22.0", To: "go1.22.3", Value: Value{152, 8, "uint64"}},
		{From: "go1.22.4", To: "go1.22.4", Value: Value{160, 8, "uint64"}},
	}, s.Fields[fGoid.String()]["amd64"])
	assert.Equal(t, []Range{{From: "go1.22.3", To: "go1.22.4", Value: Value{232, 16, "string"}}}, s.Fields[fPattern.String()]["amd64"])
	assert.Len(t, s.Coverage["amd64"], 6)
	require.NoError(t, s.Check())
}

func TestExpandInvertsShard(t *testing.T) {
	tb := sampleTable(t)
	back, err := tb.Shard().Expand()
	require.NoError(t, err)
	assert.Equal(t, tb, back)
}

func TestEncodeIsDeterministic(t *testing.T) {
	a, err := sampleTable(t).Shard().Encode()
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		b, err := sampleTable(t).Shard().Encode()
		require.NoError(t, err)
		require.Equal(t, a, b)
	}
}

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, WriteShard(dir, sampleTable(t).Shard()))
	db, err := OpenDir(dir)
	require.NoError(t, err)

	tests := []struct {
		name    string
		version string
		arch    string
		field   FieldID
		opts    []LookupOption
		want    Value
		from    string
		wantErr error
	}{
		{name: "covered", version: "go1.22.1", arch: "amd64", field: fGoid, want: Value{152, 8, "uint64"}, from: "go1.22.0"},
		{name: "runtime.Version spelling", version: "go1.22.4 X:boringcrypto", arch: "amd64", field: fGoid, want: Value{160, 8, "uint64"}, from: "go1.22.4"},
		{name: "bare number", version: "1.22.0", arch: "amd64", field: fMethod, want: Value{0, 16, "string"}, from: "go1.22.0"},
		{name: "field absent in version", version: "go1.22.1", arch: "amd64", field: fPattern, wantErr: ErrFieldAbsent},
		{name: "newer than anything built", version: "go1.22.9", arch: "amd64", field: fMethod, wantErr: ErrUnknownVersion},
		{name: "newer even with interpolation", version: "go1.22.9", arch: "amd64", field: fMethod, opts: []LookupOption{WithInterpolation()}, wantErr: ErrUnknownVersion},
		{name: "older than anything built", version: "go1.21.13", arch: "amd64", field: fMethod, wantErr: ErrUnknownVersion},
		{name: "unavailable version", version: "go1.22.2", arch: "amd64", field: fMethod, wantErr: ErrUnknownVersion},
		{name: "failed version", version: "go1.22.5", arch: "amd64", field: fMethod, wantErr: ErrUnknownVersion},
		{name: "unavailable version interpolated", version: "go1.22.2", arch: "amd64", field: fMethod, opts: []LookupOption{WithInterpolation()}, want: Value{0, 16, "string"}, from: "go1.22.0"},
		{name: "interpolation refused where neighbours disagree", version: "go1.22.2", arch: "amd64", field: fPattern, opts: []LookupOption{WithInterpolation()}, wantErr: ErrUnknownVersion},
		{name: "interpolation refused for a version never recorded", version: "go1.22.13", arch: "amd64", field: fMethod, opts: []LookupOption{WithInterpolation()}, wantErr: ErrUnknownVersion},
		{name: "unknown arch", version: "go1.22.1", arch: "riscv64", field: fMethod, wantErr: ErrUnknownArch},
		{name: "untracked field", version: "go1.22.1", arch: "amd64", field: FieldID{"net/http", "Request", "Nope"}, wantErr: ErrUnknownField},
		{name: "devel version", version: "devel +abc", arch: "amd64", field: fMethod, wantErr: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := db.Lookup(StdModule, tt.version, tt.arch, tt.field, tt.opts...)
			if tt.name == "devel version" {
				require.Error(t, err)
				return
			}
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, r.Value)
			assert.Equal(t, tt.from, r.Provenance.From)
			assert.Equal(t, "database", r.Provenance.Source)
			assert.Equal(t, len(tt.opts) > 0, r.Provenance.Interpolated)
		})
	}
}

func TestVersionErrorSaysWhatToDo(t *testing.T) {
	s := sampleTable(t).Shard()
	_, err := s.Lookup("go1.22.9", "amd64", fMethod)
	var verr *VersionError
	require.ErrorAs(t, err, &verr)
	assert.Equal(t, "go1.22.4", verr.Newest)
	assert.Contains(t, err.Error(), "offsetgen generate")
	_, err = s.Lookup("go1.22.5", "amd64", fMethod)
	assert.Contains(t, err.Error(), "compile: boom")
}

func TestUnknownModule(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, WriteShard(dir, sampleTable(t).Shard()))
	db, err := OpenDir(dir)
	require.NoError(t, err)
	_, err = db.Lookup("google.golang.org/grpc", "v1.60.0", "amd64", fMethod)
	assert.ErrorIs(t, err, ErrUnknownModule)
}

func TestSetRejectsInconsistentBuilds(t *testing.T) {
	tb := NewTable(StdModule, []FieldID{fMethod})
	assert.Error(t, tb.Set("amd64", ok("go1.22.0", map[FieldID]Value{fGoid: {}})), "untracked field")
	assert.Error(t, tb.Set("amd64", Build{Coverage: Coverage{Version: "go1.22.0"}}), "no status")
	assert.Error(t, tb.Set("amd64", Build{Coverage: Coverage{Version: "go1.22.0", Status: StatusFailed}, Values: map[FieldID]Value{fMethod: {}}}), "values on failure")
	assert.Error(t, tb.Set("amd64", ok("banana", nil)), "bad version")
}

func TestVerifyAcceptsWrittenDatabase(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, WriteShard(dir, sampleTable(t).Shard()))
	require.NoError(t, Verify(os.DirFS(dir)))
}

func TestVerifyFindsFaults(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(dir string, s *Shard)
		want   string
	}{
		{"edited shard bytes", func(dir string, s *Shard) {
			p := filepath.Join(dir, ShardFile(StdModule))
			data, _ := os.ReadFile(p)
			data = append(data, ' ')
			os.WriteFile(p, data, 0o644)
		}, "sha256"},
		{"overlapping ranges", func(dir string, s *Shard) {
			r := s.Fields[fGoid.String()]["amd64"]
			r[1].From = "go1.22.3"
			writeRaw(dir, s)
		}, "overlap"},
		{"uncompacted ranges", func(dir string, s *Shard) {
			s.Fields[fMethod.String()]["amd64"] = []Range{
				{From: "go1.22.0", To: "go1.22.1", Value: Value{0, 16, "string"}},
				{From: "go1.22.3", To: "go1.22.4", Value: Value{0, 16, "string"}},
			}
			writeRaw(dir, s)
		}, "not compacted"},
		{"range bound not built", func(dir string, s *Shard) {
			s.Fields[fMethod.String()]["amd64"][0].From = "go1.22.2"
			writeRaw(dir, s)
		}, "not bounded"},
		{"coverage out of order", func(dir string, s *Shard) {
			c := s.Coverage["amd64"]
			c[0], c[1] = c[1], c[0]
			writeRaw(dir, s)
		}, "ascending"},
		{"failure without reason", func(dir string, s *Shard) {
			s.Coverage["amd64"][5].Reason = ""
			writeRaw(dir, s)
		}, "without a reason"},
		{"field set hash", func(dir string, s *Shard) {
			s.FieldSet = "0000"
			writeRaw(dir, s)
		}, "fieldset"},
		{"schema", func(dir string, s *Shard) {
			s.Schema = 99
			writeRaw(dir, s)
		}, "schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := sampleTable(t).Shard()
			require.NoError(t, WriteShard(dir, s))
			tt.mutate(dir, s)
			err := Verify(os.DirFS(dir))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// writeRaw writes a shard bypassing the table, with a matching index, so
// that only the shard's content is at fault.
func writeRaw(dir string, s *Shard) {
	if err := WriteShard(dir, s); err != nil {
		panic(err)
	}
}

func TestParseFieldID(t *testing.T) {
	tests := []struct {
		in   string
		want FieldID
	}{
		{"net/http.Request.ctx", FieldID{"net/http", "Request", "ctx"}},
		{"runtime.g.goid", FieldID{"runtime", "g", "goid"}},
		{"context.valueCtx.Context.x.y", FieldID{"context", "valueCtx", "Context.x.y"}},
		{"google.golang.org/grpc/internal/transport.Stream.method", FieldID{"google.golang.org/grpc/internal/transport", "Stream", "method"}},
		{"gopkg.in/yaml%2ev3.Node.Kind", FieldID{"gopkg.in/yaml%2ev3", "Node", "Kind"}},
	}
	for _, tt := range tests {
		got, err := ParseFieldID(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got)
		assert.Equal(t, tt.in, got.String())
	}
	for _, bad := range []string{"", "runtime.g", "net/http.Request", "a.b..c", "a.b.c.", "a. b.c", "x/"} {
		_, err := ParseFieldID(bad)
		assert.Error(t, err, bad)
	}
}

func TestShardFileNames(t *testing.T) {
	assert.Equal(t, "std.json", ShardFile("std"))
	assert.Equal(t, "google.golang.org_grpc.json", ShardFile("google.golang.org/grpc"))
	assert.Equal(t, "github.com_!azure_sdk.json", ShardFile("github.com/Azure/sdk"))
}

func TestInterpolationStaysWithinReleaseLine(t *testing.T) {
	tb := NewTable(StdModule, []FieldID{fMethod})
	method := map[FieldID]Value{fMethod: {Offset: 0, Size: 16, Type: "string"}}
	require.NoError(t, tb.Set("amd64", ok("go1.21.13", method)))
	require.NoError(t, tb.Set("amd64", ok("go1.22.1", method)))
	for _, v := range []string{"go1.21.14", "go1.22.0"} {
		require.NoError(t, tb.Set("amd64", Build{Coverage: Coverage{Version: v, Status: StatusUnavailable, Reason: "proxy answered 403"}}))
	}
	s := tb.Shard()
	_, err := s.Lookup("go1.22.0", "amd64", fMethod, WithInterpolation())
	assert.ErrorIs(t, err, ErrUnknownVersion, "go1.22.0 lies between builds of two lines")
	_, err = s.Lookup("go1.21.14", "amd64", fMethod, WithInterpolation())
	assert.ErrorIs(t, err, ErrUnknownVersion)
}

func TestCanonicalVersionAcceptsDevelForModulesOnly(t *testing.T) {
	tests := []struct {
		module, in, want string
		ok               bool
	}{
		{"example.com/lib", "(devel)", "(devel)", true},
		{"example.com/lib", "1.2.3", "v1.2.3", true},
		{"example.com/lib", "v0.0.0-20240305060708-0123456789ab", "v0.0.0-20240305060708-0123456789ab", true},
		{"example.com/lib", "devel", "", false},
		{StdModule, "(devel)", "", false},
	}
	for _, tt := range tests {
		got, err := CanonicalVersion(tt.module, tt.in)
		if !tt.ok {
			assert.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got)
	}
	assert.Negative(t, CompareVersions("example.com/lib", DevelVersion, "v0.0.0-20240305060708-0123456789ab"), "(devel) orders first")
}

// TestInterpolationOnlyForRecordedVersions: a module version between two
// agreeing builds is interpolated when the database records it (the proxy
// listed it but did not serve it), and refused with a message saying why
// when it has no record (kafka-go v0.4.36: retracted, left off the list).
func TestInterpolationOnlyForRecordedVersions(t *testing.T) {
	const mod = "github.com/segmentio/kafka-go"
	field := FieldID{"github.com/segmentio/kafka-go", "Message", "Topic"}
	topic := map[FieldID]Value{field: {Offset: 0, Size: 16, Type: "string"}}
	tb := NewTable(mod, []FieldID{field})
	require.NoError(t, tb.Set("amd64", ok("v0.4.35", topic)))
	require.NoError(t, tb.Set("amd64", Build{Coverage: Coverage{Version: "v0.4.37", Status: StatusUnavailable, Reason: "proxy answered 403"}}))
	require.NoError(t, tb.Set("amd64", ok("v0.4.38", topic)))
	s := tb.Shard()

	r, err := s.Lookup("v0.4.37", "amd64", field, WithInterpolation())
	require.NoError(t, err, "a recorded, unavailable version between agreeing builds")
	assert.True(t, r.Provenance.Interpolated)
	assert.Equal(t, topic[field], r.Value)

	_, err = s.Lookup("v0.4.36", "amd64", field, WithInterpolation())
	require.ErrorIs(t, err, ErrUnknownVersion)
	var verr *VersionError
	require.ErrorAs(t, err, &verr)
	assert.Equal(t, "v0.4.36", verr.Version)
	assert.Contains(t, err.Error(), "is not interpolated: the database has no record of this version")
	assert.Contains(t, err.Error(), "offsetgen generate --modules github.com/segmentio/kafka-go --versions v0.4.36")

	_, err = s.Lookup("v0.4.36", "amd64", field)
	require.ErrorIs(t, err, ErrUnknownVersion)
	assert.NotContains(t, err.Error(), "interpolated", "without interpolation the plain answer")

	std := NewTable(StdModule, []FieldID{fMethod})
	method := map[FieldID]Value{fMethod: {Offset: 0, Size: 16, Type: "string"}}
	require.NoError(t, std.Set("amd64", ok("go1.22.1", method)))
	require.NoError(t, std.Set("amd64", ok("go1.22.3", method)))
	_, err = std.Shard().Lookup("go1.22.2", "amd64", fMethod, WithInterpolation())
	require.ErrorIs(t, err, ErrUnknownVersion)
	assert.Contains(t, err.Error(), "run: offsetgen generate --versions 1.22.2")
}

func TestExperimentModuleNamesTheExperimentSet(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, StdModule},
		{[]string{""}, StdModule},
		{[]string{"boringcrypto"}, "std+boringcrypto"},
		{[]string{"JSONv2", "boringcrypto", "jsonv2"}, "std+boringcrypto,jsonv2"},
		{[]string{"noswissmap"}, "std+noswissmap"},
	}
	for _, tt := range tests {
		got, err := ExperimentModule(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
		assert.True(t, IsStd(got))
		back, err := ExperimentModule(Experiments(got))
		require.NoError(t, err)
		assert.Equal(t, got, back, "Experiments inverts ExperimentModule")
	}
	for _, bad := range [][]string{{"boring-crypto"}, {"x y"}, {"a/b"}} {
		_, err := ExperimentModule(bad)
		assert.Error(t, err, bad)
	}
	assert.False(t, IsStd("google.golang.org/grpc"))
	assert.False(t, IsStd("std+"))
	assert.Nil(t, Experiments("std"))
	assert.Equal(t, "std+boringcrypto.json", ShardFile("std+boringcrypto"))
}

// TestExperimentShardFollowsStdRules: an experiment shard is looked up and
// verified like std (Go release versions), and its errors name the
// command that builds it.
func TestExperimentShardFollowsStdRules(t *testing.T) {
	tb := NewTable("std+boringcrypto", []FieldID{fMethod})
	require.NoError(t, tb.Set("amd64", ok("go1.24.13", map[FieldID]Value{fMethod: {Offset: 0, Size: 16, Type: "string"}})))
	dir := t.TempDir()
	require.NoError(t, WriteShard(dir, tb.Shard()))
	require.NoError(t, Verify(os.DirFS(dir)))
	db, err := OpenDir(dir)
	require.NoError(t, err)
	r, err := db.Lookup("std+boringcrypto", "go1.24.13 X:boringcrypto", "amd64", fMethod)
	require.NoError(t, err)
	assert.Equal(t, uint64(16), r.Size)
	_, err = db.Lookup("std+boringcrypto", "1.24.12", "amd64", fMethod)
	require.ErrorIs(t, err, ErrUnknownVersion)
	assert.Contains(t, err.Error(), "run: offsetgen generate --goexperiment boringcrypto --versions 1.24.12 --arch amd64 --out DIR")
	_, err = db.Lookup(StdModule, "1.24.13", "amd64", fMethod)
	assert.ErrorIs(t, err, ErrUnknownModule, "the default build's shard is another one")
}

func TestGenerateCommand(t *testing.T) {
	assert.Equal(t, "offsetgen generate --versions 1.22.5 --arch arm64 --out DIR", GenerateCommand(StdModule, "go1.22.5", "arm64"))
	assert.Equal(t, "offsetgen generate --goexperiment boringcrypto,jsonv2 --versions 1.25.0 --arch amd64 --out DIR", GenerateCommand("std+boringcrypto,jsonv2", "go1.25.0", "amd64"))
	assert.Equal(t, "offsetgen generate --modules example.com/lib --versions v1.2.3 --arch amd64 --out DIR", GenerateCommand("example.com/lib", "v1.2.3", "amd64"))
}

func TestDifferingFields(t *testing.T) {
	std := sampleTable(t)
	exp := NewTable("std+noswissmap", []FieldID{fPattern, fMethod, fGoid})
	require.NoError(t, exp.Set("amd64", ok("go1.22.4", map[FieldID]Value{
		fMethod: {Offset: 0, Size: 16, Type: "string"}, fGoid: {Offset: 168, Size: 8, Type: "uint64"}})))
	require.NoError(t, exp.Set("amd64", ok("go1.22.1", map[FieldID]Value{
		fMethod: {Offset: 0, Size: 16, Type: "string"}, fGoid: {Offset: 152, Size: 8, Type: "uint64"}})))
	d, compared := DifferingFields(exp, std, "amd64", "go1.22.4")
	require.True(t, compared)
	assert.Equal(t, []FieldID{fPattern, fGoid}, d, "goid moved, Pattern exists only in the default build")
	d, compared = DifferingFields(exp, std, "amd64", "go1.22.1")
	require.True(t, compared)
	assert.Empty(t, d, "the same layout")
	_, compared = DifferingFields(exp, std, "amd64", "go1.22.2")
	assert.False(t, compared, "go1.22.2 is unavailable in std")
	_, compared = DifferingFields(exp, std, "arm64", "go1.22.1")
	assert.False(t, compared)
}
