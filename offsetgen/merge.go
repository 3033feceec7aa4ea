package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/offsetdb/offsetdb/offsets"
)

func runMerge(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	out := fs.String("out", "data", "database directory to write; if it already holds a database, it must also be one of the inputs")
	take := map[string]string{}
	fs.Func("take", "MODULE=DIR: take MODULE from input DIR only, ignoring the other inputs' shards of it (to install a shard regenerated for a new field set); repeatable", func(v string) error {
		m, d, ok := strings.Cut(v, "=")
		if !ok || m == "" || d == "" {
			return fmt.Errorf("want MODULE=DIR, got %q", v)
		}
		take[m] = d
		return nil
	})
	dirs, err := parse(fs, args)
	if err != nil {
		return err
	}
	for m, d := range take {
		if !slices.ContainsFunc(dirs, func(in string) bool { same, _ := sameDir(in, d); return same }) {
			return fmt.Errorf("%w: --take %s=%s: %s is not one of the inputs", errUsage, m, d, d)
		}
	}
	if len(dirs) == 0 {
		return fmt.Errorf("%w: want at least one database DIR to merge", errUsage)
	}
	if err := checkMergeOut(*out, dirs); err != nil {
		return err
	}

	byModule := map[string][]offsets.MergeSource{}
	for _, dir := range dirs {
		if err := offsets.Verify(os.DirFS(dir)); err != nil {
			return fmt.Errorf("input %s is not sound (run offsetgen verify --data %s):\n%w", dir, dir, err)
		}
		db, err := offsets.OpenDir(dir)
		if err != nil {
			return err
		}
		for _, m := range db.Modules() {
			if from, ok := take[m]; ok {
				if same, _ := sameDir(dir, from); !same {
					continue
				}
			}
			s, err := db.Shard(m)
			if err != nil {
				return fmt.Errorf("%s: %w", dir, err)
			}
			byModule[m] = append(byModule[m], offsets.MergeSource{Name: dir, Shard: s})
		}
	}

	for m, d := range take {
		if len(byModule[m]) == 0 {
			return fmt.Errorf("--take %s=%s: %s has no shard of %s", m, d, d, m)
		}
	}

	// Merge everything before writing anything: a conflict leaves --out as it was.
	var merged []*offsets.Shard
	var errs []error
	for _, m := range slices.Sorted(maps.Keys(byModule)) {
		s, notes, err := offsets.Merge(byModule[m])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, n := range notes {
			slog.Info("merge: "+n.String(), "module", n.Module)
		}
		merged = append(merged, s)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, s := range merged {
		if err := offsets.WriteShard(*out, s); err != nil {
			return fmt.Errorf("write %s: %w", *out, err)
		}
	}
	if err := offsets.Verify(os.DirFS(*out)); err != nil {
		return fmt.Errorf("merged database %s is not sound:\n%w", *out, err)
	}
	for _, s := range merged {
		for _, arch := range slices.Sorted(maps.Keys(s.Coverage)) {
			n := map[offsets.Status]int{}
			for _, c := range s.Coverage[arch] {
				n[c.Status]++
			}
			fmt.Fprintf(stdout, "%s/%s: %d ok, %d unavailable, %d failed (from %d inputs)\n", s.Module, arch,
				n[offsets.StatusOK], n[offsets.StatusUnavailable], n[offsets.StatusFailed], len(byModule[s.Module]))
		}
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

// checkMergeOut refuses an output directory that already holds a database
// other than one of the inputs: its other modules would survive the merge
// and make the result depend on what was there before. Merging into an
// existing database is done by listing it as an input too.
func checkMergeOut(out string, dirs []string) error {
	if _, err := os.Stat(filepath.Join(out, offsets.IndexFile)); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, d := range dirs {
		if same, err := sameDir(out, d); err != nil {
			return err
		} else if same {
			return nil
		}
	}
	return fmt.Errorf("%w: --out %s already holds a database that is not an input: list it as an input to merge into it, or choose a new directory", errUsage, out)
}

func sameDir(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
