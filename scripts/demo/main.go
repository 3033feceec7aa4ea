// Command demo is the Go half of `make demo` (scripts/demo.sh):
//
//	go run ./scripts/demo build -out DIR [-prefix demo-] [RELEASE[:stripped]...]
//	go run ./scripts/demo tree [FILE]
//
// build compiles tracer/testdata/chain once per Go release into DIR, as
// demo-a, demo-b, ... (-prefix) in the order given (default: go1.20.14:stripped
// go1.22.12, then the installed go as the last), and prints one line per
// service: "NAME RELEASE stripped|not-stripped". Releases other than the
// installed one are fetched from the Go module proxy (GOPROXY, verified
// against the checksum database) by offsetgen's toolchain package, once: they
// are cached where the tests keep theirs, ~/.cache/offsetdb-test/toolchains
// (~75 MB download and ~230 MB of disk each).
//
// tree reads the tracer's console output (OTEL_TRACES_EXPORTER=console) from
// FILE or stdin and prints one trace tree per trace (package tracetree).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/scripts/demo/tracetree"
)

const usage = `usage: demo build -out DIR [-prefix demo-] [RELEASE[:stripped]...]  build the chain service per Go release
       demo tree [FILE]                                              print the console exporter's spans as trace trees`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch cmd := firstArg(os.Args); cmd {
	case "build":
		err = build(ctx, os.Args[2:])
	case "tree":
		err = tree(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func firstArg(args []string) string {
	if len(args) < 2 {
		return ""
	}
	return args[1]
}

func tree(args []string) error {
	var in io.Reader = os.Stdin
	if len(args) > 0 {
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	spans, skipped, err := tracetree.Read(in)
	if err != nil {
		return err
	}
	if skipped > 0 {
		fmt.Fprintf(os.Stderr, "demo tree: %d line(s) looked like JSON but were not spans\n", skipped)
	}
	if len(spans) == 0 {
		return errors.New("no spans in the input")
	}
	return tracetree.Print(os.Stdout, tracetree.Build(spans))
}

// service is one build of the chain service.
type service struct {
	release  string // "go1.22.12"; the installed go's when goroot is local
	stripped bool
}

func build(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	out := fs.String("out", "", "directory for the binaries")
	src := fs.String("src", "tracer/testdata/chain", "the chain service's source directory")
	prefix := fs.String("prefix", "demo-", "the binaries' names before a, b, c, ...: their service.name (distinct from the tests' chain-*, so that a test's tracer does not trace them)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("build: -out DIR is required")
	}
	specs := fs.Args()
	if len(specs) == 0 {
		specs = []string{"go1.20.14:stripped", "go1.22.12"}
	}
	local, err := toolchain.Local(ctx)
	if err != nil {
		return err
	}
	var services []service
	for _, s := range specs {
		release, flag, _ := strings.Cut(s, ":")
		if flag != "" && flag != "stripped" {
			return fmt.Errorf("build: %q: only :stripped may follow a release", s)
		}
		services = append(services, service{release: release, stripped: flag == "stripped"})
	}
	services = append(services, service{release: local.Version})

	cacheDir, err := os.UserCacheDir()
	if err != nil {
		return err
	}
	cacheDir = filepath.Join(cacheDir, "offsetdb-test")
	cache := &toolchain.Cache{Dir: filepath.Join(cacheDir, "toolchains"),
		Proxy: &toolchain.Proxy{URL: toolchain.ProxyURLFromEnv(), ConfigDir: filepath.Join(cacheDir, "sumdb")}}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for i, s := range services {
		name := fmt.Sprintf("%s%c", *prefix, 'a'+i)
		goroot, gocache := local.GOROOT, local.GOCACHE
		if s.release != local.Version {
			v, err := goversion.Parse(s.release)
			if err != nil {
				return fmt.Errorf("build: %q: %w", s.release, err)
			}
			fmt.Fprintf(os.Stderr, "demo: %s: Go toolchain %s from %s (cached in %s)\n", name, v, cache.Proxy.BaseURL(), cache.Dir)
			if goroot, _, err = cache.Toolchain(ctx, v); err != nil {
				return fmt.Errorf("fetch %s from the module proxy: %w (the demo needs it once; set GOPROXY to a proxy you can reach, or name other releases: demo build -out DIR RELEASE...)", v, err)
			}
			gocache = filepath.Join(cacheDir, "gocache-"+v.String())
		}
		if err := compile(ctx, *src, filepath.Join(*out, name), goroot, gocache, s.stripped); err != nil {
			return fmt.Errorf("build %s with %s: %w", name, s.release, err)
		}
		strip := "not-stripped"
		if s.stripped {
			strip = "stripped"
		}
		fmt.Printf("%s %s %s\n", name, s.release, strip)
	}
	return nil
}

// compile builds the service in srcDir with the toolchain at goroot, in a
// module of its own whose go directive is the toolchain's line (no
// dependencies, no downloads).
func compile(ctx context.Context, srcDir, bin, goroot, gocache string, stripped bool) error {
	gobin := filepath.Join(goroot, "bin", "go")
	ver, err := exec.CommandContext(ctx, gobin, "env", "GOVERSION").Output()
	if err != nil {
		return fmt.Errorf("%s env GOVERSION: %w", gobin, err)
	}
	v, err := goversion.Parse(strings.TrimSpace(string(ver)))
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "demo-chain-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	files, err := filepath.Glob(filepath.Join(srcDir, "*.go"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no Go files in %s (run from the repository root)", srcDir)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(work, filepath.Base(f)), data, 0o644); err != nil {
			return err
		}
	}
	gomod := fmt.Sprintf("module example.com/chain\n\ngo %d.%d\n", v.Major, v.Minor)
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte(gomod), 0o644); err != nil {
		return err
	}
	bin, err = filepath.Abs(bin)
	if err != nil {
		return err
	}
	ldflags := ""
	if stripped {
		ldflags = "-s -w"
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-ldflags="+ldflags, "-o", bin, ".")
	cmd.Dir = work
	cmd.Env = []string{"PATH=" + filepath.Join(goroot, "bin") + ":/usr/bin:/bin", "HOME=" + work, "GOROOT=" + goroot,
		"GOPATH=" + filepath.Join(work, "gopath"), "GOCACHE=" + gocache,
		"GOFLAGS=", "GOTOOLCHAIN=local", "GO111MODULE=on", "GOPROXY=off", "CGO_ENABLED=0", "GOENV=off"}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, msg)
	}
	return nil
}
