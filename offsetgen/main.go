// Command offsetgen builds and queries the offset database.
//
//	offsetgen generate [--modules std] [--arch amd64,arm64] [--since 1.12] [--workers N] [--cache DIR] [--out data]
//	                   [--versions V,...] [--constraint '>=v1.60.0'] [--pre] [--compare-go] [--goexperiment X[,Y]] [--recheck-unavailable]
//	offsetgen local    --module DIR [--fields FILE] [--version V] [--arch amd64,arm64] [--out data] [--replace] [FIELD...]
//	offsetgen query    [--data DIR] [--arch amd64] [--json] [--interpolate] [--go 1.24.3] MODULE@VERSION FIELD...
//	offsetgen versions [--data DIR] MODULE
//	offsetgen verify   [--data DIR]
//	offsetgen binary   [--json] PATH FIELD...
//	offsetgen coverage [--data DIR] [--readme FILE]
//	offsetgen merge    [--out DIR] [--take MODULE=DIR] DIR...
//	offsetgen diff     [--json] [--fail-on-changed-values] OLD NEW
//	offsetgen publish  --mode pr|release --old DIR [--data DIR] [--repo OWNER/NAME] [--allow-changes REASON] ...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// errUsage marks errors that come from how the command was called; main
// prints them with the usage text and exits 2.
var errUsage = errors.New("usage")

type command struct {
	name  string
	usage string
	run   func(ctx context.Context, args []string, stdout io.Writer) error
}

var commands = []command{
	{"generate", "generate [--modules std|MODULE,...] [--arch amd64,arm64] [--since 1.12] [--versions V,...] [--constraint '>=v1.60.0'] [--pre] [--compare-go] [--goexperiment X[,Y]] [--recheck-unavailable] [--workers N] [--cache DIR] [--out data]", runGenerate},
	{"local", "local --module DIR [--fields FILE] [--version V] [--arch amd64,arm64] [--out data] [--replace] [FIELD...]", runLocal},
	{"query", "query [--data DIR] [--arch amd64] [--json] [--interpolate] [--go 1.24.3] MODULE@VERSION FIELD...", runQuery},
	{"versions", "versions [--data DIR] MODULE", runVersions},
	{"verify", "verify [--data DIR]", runVerify},
	{"binary", "binary [--json] PATH FIELD...", runBinary},
	{"coverage", "coverage [--data DIR] [--readme FILE]", runCoverage},
	{"merge", "merge [--out DIR] [--take MODULE=DIR] DIR...", runMerge},
	{"diff", "diff [--json] [--fail-on-changed-values] OLD NEW", runDiff},
	{"publish", "publish --mode pr|release --old DIR [--data DIR] [--repo OWNER/NAME] [--base BRANCH] [--branch BRANCH] [--api-url URL] [--allow-changes REASON] [--date YYYY-MM-DD] [--force]", runPublish},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel()})))
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := c.run(ctx, args[1:], stdout)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "offsetgen %s: %v\nusage: offsetgen %s\n", c.name, err, c.usage)
			return 2
		}
		fmt.Fprintf(stderr, "offsetgen %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(stderr, "offsetgen: unknown command %q\n", args[0])
	printUsage(stderr)
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "offsetgen builds and queries the Go struct offset database.\n\nusage:")
	for _, c := range commands {
		fmt.Fprintln(w, "  offsetgen "+c.usage)
	}
	fmt.Fprintln(w, "\nRun 'offsetgen COMMAND --help' for a command's flags.")
}

// logLevel reads OFFSETDB_LOG_LEVEL (debug, info, warn, error).
func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("OFFSETDB_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// parse parses flags that may appear before, between or after positional
// arguments ("query std@1.22.5 FIELD --json" works as users type it).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(os.Stderr)
				fs.PrintDefaults()
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
