package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/offsetgen/local"
	"github.com/offsetdb/offsetdb/offsets"
)

func runLocal(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	dir := fs.String("module", "", "directory of the module (holds its go.mod)")
	fieldsFile := fs.String("fields", "", "field file (one field per line, \"keep EXPR\" lines, # comments); fields may also be given as arguments")
	version := fs.String("version", "", "version to record (default: the pseudo-version of the directory's git commit, else (devel))")
	out := fs.String("out", "data", "database directory to update")
	arches := fs.String("arch", "amd64,arm64", "comma-separated GOARCHes")
	replace := fs.Bool("replace", false, "when --out holds the module for other fields, drop its other versions instead of refusing")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("%w: --module DIR is required", errUsage)
	}
	archList := splitList(*arches)
	if len(archList) == 0 {
		return fmt.Errorf("%w: --arch: name at least one GOARCH", errUsage)
	}
	for _, a := range archList {
		if !slices.Contains([]string{"amd64", "arm64"}, a) {
			return fmt.Errorf("%w: --arch %s: supported are amd64 and arm64", errUsage, a)
		}
	}
	set, err := localFieldSet(*fieldsFile, pos)
	if err != nil {
		return err
	}
	res, err := local.Run(ctx, local.Config{Dir: *dir, Set: set, Version: *version, Arches: archList, OutDir: *out, Replace: *replace, Log: slog.Default()})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s@%s: %d fields for %s, built with %s, written to %s\n",
		res.Module, res.Version, len(set.Fields), strings.Join(archList, ","), res.Toolchain, *out)
	return nil
}

// localFieldSet reads the field file, if any, and adds the fields given as
// arguments.
func localFieldSet(file string, args []string) (*fieldset.Set, error) {
	var text strings.Builder
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--fields: %w", err)
		}
		text.Write(data)
		text.WriteString("\n")
	}
	for _, a := range args {
		if _, err := offsets.ParseFieldID(a); err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		text.WriteString(a + "\n")
	}
	set, err := fieldset.Parse(strings.NewReader(text.String()))
	if err != nil {
		if file != "" {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return nil, err
	}
	if len(set.Fields) == 0 {
		return nil, fmt.Errorf("%w: no fields: give --fields FILE or FIELD arguments (import/path.Struct.field)", errUsage)
	}
	return set, nil
}
