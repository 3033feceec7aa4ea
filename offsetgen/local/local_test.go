package local

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/offsets"
)

// writeModule writes a small library module into a new directory.
func writeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	return dir
}

var library = map[string]string{
	"go.mod": "module example.com/mylib\n\ngo 1.21\n",
	"client.go": `package mylib

type Client struct {
	name string
	conn *conn
	Port int
}

type conn struct {
	id   uint64
	addr string
}

func NewClient(name string) *Client { return &Client{name: name, conn: &conn{addr: name}} }
`,
	// Same package name as the root: the probe must alias one of them.
	"inner/mylib/client.go": "package mylib\n\ntype Client struct{ X, Y int32 }\n",
}

func fields(t *testing.T, text string) *fieldset.Set {
	t.Helper()
	set, err := fieldset.Parse(strings.NewReader(text))
	require.NoError(t, err)
	return set
}

func TestRunWritesShardForLocalModule(t *testing.T) {
	dir := writeModule(t, library)
	out := t.TempDir()
	set := fields(t, "keep mylib.NewClient\nexample.com/mylib.Client.conn\nexample.com/mylib.Client.Port\nexample.com/mylib.conn.addr\nexample.com/mylib/inner/mylib.Client.Y\n")
	res, err := Run(context.Background(), Config{Dir: dir, Set: set, Version: "v1.2.3", Arches: []string{"amd64"}, OutDir: out})
	require.NoError(t, err)
	assert.Equal(t, "example.com/mylib", res.Module)
	assert.Equal(t, "v1.2.3", res.Version)
	assert.True(t, strings.HasPrefix(res.Toolchain, "go1."), res.Toolchain)

	db, err := offsets.OpenDir(out)
	require.NoError(t, err)
	require.NoError(t, offsets.Verify(os.DirFS(out)))
	for field, want := range map[string]offsets.Value{
		"example.com/mylib.Client.conn":          {Offset: 16, Size: 8, Type: "*example.com/mylib.conn"},
		"example.com/mylib.Client.Port":          {Offset: 24, Size: 8, Type: "int"},
		"example.com/mylib.conn.addr":            {Offset: 8, Size: 16, Type: "string"},
		"example.com/mylib/inner/mylib.Client.Y": {Offset: 4, Size: 4, Type: "int32"},
	} {
		id, err := offsets.ParseFieldID(field)
		require.NoError(t, err)
		r, err := db.Lookup("example.com/mylib", "v1.2.3", "amd64", id)
		require.NoError(t, err, field)
		assert.Equal(t, want, r.Value, field)
	}
	s, err := db.Shard("example.com/mylib")
	require.NoError(t, err)
	assert.Equal(t, res.Toolchain, s.Coverage["amd64"][0].Toolchain, "the toolchain is recorded")
}

func TestRunKeepsOtherModulesAndVersions(t *testing.T) {
	dir := writeModule(t, library)
	out := t.TempDir()
	set := fields(t, "example.com/mylib.Client.Port\n")
	for _, v := range []string{"v1.0.0", "v1.1.0"} {
		_, err := Run(context.Background(), Config{Dir: dir, Set: set, Version: v, Arches: []string{"amd64"}, OutDir: out})
		require.NoError(t, err)
	}
	db, err := offsets.OpenDir(out)
	require.NoError(t, err)
	s, err := db.Shard("example.com/mylib")
	require.NoError(t, err)
	require.Len(t, s.Coverage["amd64"], 2)
	assert.Equal(t, "v1.0.0", s.Fields["example.com/mylib.Client.Port"]["amd64"][0].From)
	assert.Equal(t, "v1.1.0", s.Fields["example.com/mylib.Client.Port"]["amd64"][0].To)

	// Another field set is refused without --replace, and the database is untouched.
	before := snapshot(t, out)
	_, err = Run(context.Background(), Config{Dir: dir, Set: fields(t, "example.com/mylib.Client.conn\n"), Version: "v1.2.0", Arches: []string{"amd64"}, OutDir: out})
	require.ErrorIs(t, err, ErrFieldSetChanged)
	assert.Equal(t, before, snapshot(t, out))
	_, err = Run(context.Background(), Config{Dir: dir, Set: fields(t, "example.com/mylib.Client.conn\n"), Version: "v1.2.0", Arches: []string{"amd64"}, OutDir: out, Replace: true})
	require.NoError(t, err)
}

func TestRunNamesVersionAfterGitCommit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := writeModule(t, library)
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_COMMITTER_DATE=2024-03-05T06:07:08Z", "GIT_AUTHOR_DATE=2024-03-05T06:07:08Z", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
	}
	git("init", "-q")
	git("add", "-A")
	git("commit", "-q", "-m", "init")
	v := VCSVersion(context.Background(), dir, "example.com/mylib", nil)
	assert.Regexp(t, regexp.MustCompile(`^v0\.0\.0-20240305060708-[0-9a-f]{12}$`), v)
	assert.Regexp(t, `^v2\.0\.0-20240305060708-`, VCSVersion(context.Background(), dir, "example.com/mylib/v2", nil), "major version from the module path")

	out := t.TempDir()
	res, err := Run(context.Background(), Config{Dir: dir, Set: fields(t, "example.com/mylib.Client.Port\n"), Arches: []string{"amd64"}, OutDir: out})
	require.NoError(t, err)
	assert.Equal(t, v, res.Version)

	git("tag", "v1.2.3")
	git("tag", "v2.0.0") // another major version: not this module's
	assert.Equal(t, "v1.2.3", VCSVersion(context.Background(), dir, "example.com/mylib", nil), "a tagged commit is its tag")
	git("commit", "-q", "--allow-empty", "-m", "next")
	assert.Regexp(t, `^v1\.2\.4-0\.20240305060708-[0-9a-f]{12}$`, VCSVersion(context.Background(), dir, "example.com/mylib", nil), "pseudo-version after the highest tag")
}

func TestRunWithoutVCSIsDevel(t *testing.T) {
	dir := writeModule(t, library)
	t.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(dir))
	out := t.TempDir()
	res, err := Run(context.Background(), Config{Dir: dir, Set: fields(t, "example.com/mylib.Client.Port\n"), Arches: []string{"amd64"}, OutDir: out})
	require.NoError(t, err)
	assert.Equal(t, offsets.DevelVersion, res.Version)
	db, err := offsets.OpenDir(out)
	require.NoError(t, err)
	_, err = db.Lookup("example.com/mylib", offsets.DevelVersion, "amd64", offsets.FieldID{Package: "example.com/mylib", Struct: "Client", Field: "Port"})
	assert.NoError(t, err)
}

func TestRunRejectsBadInputWithoutWriting(t *testing.T) {
	good := writeModule(t, library)
	broken := map[string]string{}
	for k, v := range library {
		broken[k] = v
	}
	broken["broken.go"] = "package mylib\n\nfunc broken() { undefinedThing() }\n"
	tests := []struct {
		name   string
		dir    string
		fields string
		want   []string
	}{
		{"no go.mod", t.TempDir(), "example.com/mylib.Client.Port", []string{"has no go.mod", "go mod init"}},
		{"missing field", good, "example.com/mylib.Client.nope\nexample.com/mylib.Client.Port", []string{"example.com/mylib.Client.nope", `has no field "nope"`}},
		{"missing struct", good, "example.com/mylib.Clinet.Port", []string{"no struct example.com/mylib.Clinet"}},
		{"missing unexported struct", good, "example.com/mylib.conect.addr", []string{"example.com/mylib.conect.addr", "keep EXPR"}},
		{"package outside module", good, "example.com/other.Client.Port", []string{"not in module example.com/mylib"}},
		{"package not in module", good, "example.com/mylib/nopkg.Client.Port", []string{"example.com/mylib/nopkg", "no directory"}},
		{"module does not build", writeModule(t, broken), "example.com/mylib.Client.Port", []string{"undefined: undefinedThing", "go build ./...", "nothing was written"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			_, err := Run(context.Background(), Config{Dir: good, Set: fields(t, "example.com/mylib.Client.Port\n"), Version: "v1.0.0", Arches: []string{"amd64"}, OutDir: out})
			require.NoError(t, err)
			before := snapshot(t, out)
			_, err = Run(context.Background(), Config{Dir: tt.dir, Set: fields(t, tt.fields), Version: "v1.0.0", Arches: []string{"amd64"}, OutDir: out, Replace: true})
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Equal(t, before, snapshot(t, out), "the database is untouched")
		})
	}
}

// snapshot returns every file in dir with its contents.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	m := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		m[e.Name()] = string(data)
	}
	return m
}
