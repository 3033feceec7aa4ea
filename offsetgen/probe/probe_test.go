package probe

import (
	"context"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"runtime/debug"
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
	held := Build{Require: []Requirement{{Path: "google.golang.org/grpc", Version: "v1.12.0", Hold: true}, {Path: "golang.org/x/net", Version: "v0.1.0", Minimum: true}}}
	assert.Equal(t, "module offsetdb.probe\n\ngo 1.12\n\nrequire google.golang.org/grpc v1.12.0\n\nreplace google.golang.org/grpc => google.golang.org/grpc v1.12.0\n\nrequire golang.org/x/net v0.1.0\n",
		string(held.GoMod()), "a held module is replaced by its version")
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

func TestCheckLinkedRefusesOnlyAnotherVersionOfTheModuleItself(t *testing.T) {
	lib := Requirement{Path: "example.com/lib", Version: "v1.0.0"}
	pin := Requirement{Path: "example.com/dep", Version: "v1.1.0", Minimum: true}
	local := Requirement{Path: "example.com/local", Dir: "/src/local"}
	held := Requirement{Path: "example.com/lib", Version: "v1.0.0", Hold: true}
	// linked takes "path@version" or "path@version=>replacement version".
	linked := func(mods ...string) []*debug.Module {
		var out []*debug.Module
		for _, m := range mods {
			m, repl, replaced := strings.Cut(m, "=>")
			p, v, _ := strings.Cut(m, "@")
			d := &debug.Module{Path: p, Version: v}
			if replaced {
				d.Replace = &debug.Module{Path: p, Version: repl}
			}
			out = append(out, d)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		deps   []*debug.Module
		reqs   []Requirement
		refuse string // "" when the build is accepted
	}{{
		name: "the versions asked for",
		deps: linked("example.com/lib@v1.0.0", "example.com/dep@v1.1.0"),
		reqs: []Requirement{lib, pin},
	}, {
		name:   "the module itself upgraded by the go command",
		deps:   linked("example.com/lib@v1.2.0"),
		reqs:   []Requirement{lib},
		refuse: "linked example.com/lib@v1.2.0 instead of v1.0.0",
	}, {
		name: "a pinned dependency raised by minimal version selection",
		deps: linked("example.com/lib@v1.0.0", "example.com/dep@v1.3.0"),
		reqs: []Requirement{lib, pin},
	}, {
		name:   "the module itself upgraded while a pin is raised",
		deps:   linked("example.com/lib@v1.2.0", "example.com/dep@v1.3.0"),
		reqs:   []Requirement{lib, pin},
		refuse: "linked example.com/lib@v1.2.0 instead of v1.0.0",
	}, {
		name: "the module itself held while a pin raises its version",
		deps: linked("example.com/lib@v1.2.0=>v1.0.0", "example.com/dep@v1.3.0"),
		reqs: []Requirement{held, pin},
	}, {
		name:   "the module itself held at another version",
		deps:   linked("example.com/lib@v1.2.0=>v1.1.0"),
		reqs:   []Requirement{held},
		refuse: "linked example.com/lib@v1.1.0 instead of v1.0.0",
	}, {
		name: "a local module, linked as v0.0.0",
		deps: linked("example.com/local@v0.0.0"),
		reqs: []Requirement{local},
	}, {
		name: "a required module no package of which is linked",
		deps: linked("example.com/other@v1.0.0"),
		reqs: []Requirement{lib},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkLinked(tc.deps, tc.reqs)
			if tc.refuse == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, ErrBuild)
			assert.ErrorContains(t, err, tc.refuse)
		})
	}
}

// TestRunTellsAFullMachineFromAFailedBuild: a build the machine stopped (a
// full disk, no memory) is an error of the run, not ErrBuild, which the
// generators would record in the database as the version's failure; a
// compile error is ErrBuild. The go command is a script printing what the
// real one prints in each case.
func TestRunTellsAFullMachineFromAFailedBuild(t *testing.T) {
	set, err := fieldset.Parse(strings.NewReader("runtime.g.goid\n"))
	require.NoError(t, err)
	for _, tc := range []struct {
		name, output string
		build        bool
	}{
		{"disk full", "# crypto/sha256\ncompile: writing output: write $WORK/b150/_pkg_.a: no space left on device", false},
		{"out of memory", "fatal error: runtime: cannot allocate memory", false},
		{"compile error", "./probe.go:7:2: undefined: runtime.g", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			goroot := t.TempDir()
			require.NoError(t, os.MkdirAll(filepath.Join(goroot, "bin"), 0o755))
			script := "#!/bin/sh\ncat <<'OUT' >&2\n" + tc.output + "\nOUT\nexit 1\n"
			require.NoError(t, os.WriteFile(filepath.Join(goroot, "bin", "go"), []byte(script), 0o755))
			_, err := Build{GOROOT: goroot, Arch: "amd64", Dir: t.TempDir()}.Run(context.Background(), set)
			require.Error(t, err)
			if tc.build {
				assert.ErrorIs(t, err, ErrBuild)
				return
			}
			assert.NotErrorIs(t, err, ErrBuild, "a machine fault would be recorded as the version's failure")
			assert.ErrorIs(t, err, ErrHost)
			assert.ErrorContains(t, err, "no fault of the version")
		})
	}
}
