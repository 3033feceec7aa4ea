package probe

import (
	"go/parser"
	"go/token"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/fieldset"
)

func TestPackageName(t *testing.T) {
	tests := map[string]string{
		"net/http":                       "http",
		"runtime":                        "runtime",
		"github.com/jackc/pgx/v5":        "pgx",
		"github.com/go-sql-driver/mysql": "mysql",
		"gopkg.in/yaml.v3":               "yaml",
		"github.com/segmentio/kafka-go":  "kafkago",
		"google.golang.org/grpc":         "grpc",
	}
	for in, want := range tests {
		assert.Equal(t, want, packageName(in), in)
	}
}

func TestSourceKeepsExportedStructsAsVariables(t *testing.T) {
	set, err := fieldset.Parse(strings.NewReader("keep http.ListenAndServe\nnet/http.Request.Method\nnet/http.response.req\nruntime.g.goid\n"))
	require.NoError(t, err)
	src := string(Source(set))
	_, err = parser.ParseFile(token.NewFileSet(), "main.go", src, 0)
	require.NoError(t, err, src)
	assert.Contains(t, src, "http.Request\n", "exported struct declared as a variable")
	assert.NotContains(t, src, "http.response", "unexported structs cannot be named")
	assert.Contains(t, src, "http.ListenAndServe,")
	assert.Contains(t, src, "_ \"runtime\"", "a package only named by fields is imported for its side of the build")
	assert.NotContains(t, src, " any", "the probe must compile with Go 1.12")
}

func TestSourceAliasesPackagesWithTheSameName(t *testing.T) {
	set, err := fieldset.Parse(strings.NewReader("keep transport2.New\nexample.com/a/transport.Stream.id\nexample.com/b/transport.Stream.id\ngopkg.in/yaml%2ev3.Node.Kind\n"))
	require.NoError(t, err)
	src := string(Source(set))
	_, err = parser.ParseFile(token.NewFileSet(), "main.go", src, 0)
	require.NoError(t, err, src)
	assert.Contains(t, src, "\ttransport \"example.com/a/transport\"\n")
	assert.Contains(t, src, "\ttransport2 \"example.com/b/transport\"\n")
	assert.Contains(t, src, "transport2.Stream\n")
	assert.Contains(t, src, "\tyaml \"gopkg.in/yaml.v3\"\n", "the DWARF escape of dots is undone in imports")
	assert.Equal(t, map[string]string{"os": "os", "example.com/os": "pos", "example.com/main": "main2"},
		ImportAliases([]string{"os", "example.com/os", "example.com/main"}))
}

func TestGoModRequiresModules(t *testing.T) {
	b := Build{GoVersion: "1.22", Require: []Requirement{{Path: "example.com/lib", Dir: "/src/my lib"}, {Path: "google.golang.org/grpc", Version: "v1.60.0"}}}
	assert.Equal(t, "module offsetdb.probe\n\ngo 1.22\n\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => \"/src/my lib\"\n\nrequire google.golang.org/grpc v1.60.0\n", string(b.GoMod()))
	assert.Equal(t, "module offsetdb.probe\n\ngo 1.12\n", string(Build{}.GoMod()))
	env := strings.Join(Build{Require: b.Require, ModuleEnv: []string{"GOPROXY=http://proxy.test"}}.env(), "\n")
	assert.Contains(t, env, "GOFLAGS=-mod=mod")
	assert.True(t, strings.HasSuffix(env, "GOPROXY=http://proxy.test"), "the caller's proxy wins: os/exec uses the last value")
	assert.Contains(t, strings.Join(Build{}.env(), "\n"), "GOPROXY=off", "std probes stay offline")
}

func TestSourceLeavesInternalPackagesToKeepLines(t *testing.T) {
	set, err := fieldset.Parse(strings.NewReader("keep grpc.NewServer\ngoogle.golang.org/grpc.ClientConn.target\ngoogle.golang.org/grpc/internal/transport.ServerStream.Stream.id\n"))
	require.NoError(t, err)
	src := string(Source(set))
	_, err = parser.ParseFile(token.NewFileSet(), "main.go", src, 0)
	require.NoError(t, err, src)
	assert.NotContains(t, src, "internal/transport", "an internal package cannot be imported by the probe")
	assert.Contains(t, src, "grpc.ClientConn\n")
	assert.Contains(t, src, "grpc.NewServer,")
}
