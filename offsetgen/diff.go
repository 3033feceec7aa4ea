package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing/fstest"

	"github.com/offsetdb/offsetdb/offsets"
)

// errValuesChanged is returned by "diff --fail-on-changed-values" when a
// published offset changed; main turns it into exit status 1.
var errValuesChanged = errors.New("values changed for versions present in both databases")

func runDiff(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("diff", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	failOnChanged := fs.Bool("fail-on-changed-values", false, "exit 1 when a value changed for a version ok in both databases")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return fmt.Errorf("%w: want OLD and NEW database directories", errUsage)
	}
	d, err := diffDirs(pos[0], pos[1])
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(d); err != nil {
			return err
		}
	} else {
		writeDiff(stdout, d)
	}
	if *failOnChanged && d.HasValueChanges() {
		return errValuesChanged
	}
	return nil
}

// diffDirs compares the databases in two directories. An existing directory
// without an index is an empty database (the first run, before anything was
// published); a directory that does not exist is an error, so a mistyped
// path is not taken for "everything is new".
func diffDirs(oldDir, newDir string) (*offsets.Diff, error) {
	if err := offsets.Verify(os.DirFS(newDir)); err != nil {
		return nil, fmt.Errorf("new database %s is not sound:\n%w", newDir, err)
	}
	oldDB, err := openOrEmpty(oldDir)
	if err != nil {
		return nil, fmt.Errorf("old database: %w", err)
	}
	newDB, err := offsets.OpenDir(newDir)
	if err != nil {
		return nil, fmt.Errorf("new database: %w", err)
	}
	return offsets.DiffDBs(oldDB, newDB)
}

func openOrEmpty(dir string) (*offsets.DB, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, offsets.IndexFile)); errors.Is(err, fs.ErrNotExist) {
		slog.Info("no database in directory: treating it as empty", "dir", dir)
		empty := fmt.Sprintf(`{"schema": %d, "shards": []}`, offsets.SchemaVersion)
		return offsets.Open(fstest.MapFS{offsets.IndexFile: {Data: []byte(empty)}})
	}
	return offsets.OpenDir(dir)
}

// writeDiff prints a diff for people: one summary line per module, then one
// line per change.
func writeDiff(w io.Writer, d *offsets.Diff) {
	if d.Empty() {
		fmt.Fprintln(w, "no changes")
		return
	}
	for _, m := range d.Modules {
		state := ""
		switch {
		case m.Added:
			state = " (new module)"
		case m.Removed:
			state = " (module removed)"
		}
		fmt.Fprintf(w, "%s%s: %d added, %d removed, %d status changes, %d changed values\n", m.Module, state,
			len(m.AddedVersions), len(m.RemovedVersions), len(m.StatusChanges), len(m.ValueChanges))
		for _, f := range m.AddedFields {
			fmt.Fprintf(w, "  field+   %s\n", f)
		}
		for _, f := range m.RemovedFields {
			fmt.Fprintf(w, "  field-   %s\n", f)
		}
		for _, v := range m.AddedVersions {
			fmt.Fprintf(w, "  added    %s %s %s%s\n", v.Arch, v.Version, v.Status, reasonSuffix(v.Reason))
		}
		for _, v := range m.RemovedVersions {
			fmt.Fprintf(w, "  removed  %s %s (was %s)\n", v.Arch, v.Version, v.Status)
		}
		for _, c := range m.StatusChanges {
			fmt.Fprintf(w, "  status   %s %s %s -> %s%s\n", c.Arch, c.Version, c.Old, c.New, reasonSuffix(c.Reason))
		}
		for _, c := range m.ValueChanges {
			fmt.Fprintf(w, "  changed  %s %s %s %s -> %s\n", c.Arch, c.Version, c.Field, offsets.FormatValues(c.Old, c.OldByGo), offsets.FormatValues(c.New, c.NewByGo))
		}
	}
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + strings.TrimSpace(oneLine(reason))
}
