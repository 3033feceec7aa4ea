package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/offsetdb/offsetdb"
	"github.com/offsetdb/offsetdb/layout"
	"github.com/offsetdb/offsetdb/offsets"
)

// openDB opens --data DIR, or the database embedded in this binary when dir
// is empty.
func openDB(dir string) (*offsets.DB, error) {
	if dir == "" {
		return offsets.Open(offsetdb.Data())
	}
	return offsets.OpenDir(dir)
}

func dataFS(dir string) fs.FS {
	if dir == "" {
		return offsetdb.Data()
	}
	return os.DirFS(dir)
}

const dataUsage = "database directory (default: the database embedded in this binary)"

// fieldResult is one line of query/binary output.
type fieldResult struct {
	Field      string `json:"field"`
	Offset     uint64 `json:"offset"`
	Size       uint64 `json:"size"`
	Type       string `json:"type"`
	Provenance string `json:"provenance,omitempty"`
	Error      string `json:"error,omitempty"`
}

func runQuery(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	data := fs.String("data", "", dataUsage)
	arch := fs.String("arch", runtime.GOARCH, "GOARCH of the target (amd64, arm64)")
	asJSON := fs.Bool("json", false, "print JSON")
	interpolate := fs.Bool("interpolate", false, "answer for a version that was never built when the builds around it in its release line agree")
	goVersion := fs.String("go", "", "Go release the target was built with, for module fields whose layout depends on it (e.g. 1.24.3)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return fmt.Errorf("%w: want MODULE@VERSION and at least one FIELD", errUsage)
	}
	module, version, ok := strings.Cut(pos[0], "@")
	if !ok || module == "" || version == "" {
		return fmt.Errorf("%w: %q: want MODULE@VERSION, e.g. std@1.22.5", errUsage, pos[0])
	}
	db, err := openDB(*data)
	if err != nil {
		return err
	}
	var opts []offsets.LookupOption
	if *interpolate {
		opts = append(opts, offsets.WithInterpolation())
	}
	if *goVersion != "" {
		if _, err := offsets.CanonicalVersion(offsets.StdModule, *goVersion); err != nil {
			return fmt.Errorf("%w: --go: %v", errUsage, err)
		}
		opts = append(opts, offsets.WithGoVersion(*goVersion))
	}
	var results []fieldResult
	var errs []error
	for _, name := range pos[1:] {
		id, err := offsets.ParseFieldID(name)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		r, err := db.Lookup(module, version, *arch, id, opts...)
		if err != nil {
			errs = append(errs, err)
			results = append(results, fieldResult{Field: name, Error: err.Error()})
			continue
		}
		results = append(results, fieldResult{Field: name, Offset: r.Offset, Size: r.Size, Type: r.Type, Provenance: r.Provenance.String()})
	}
	if err := printFields(stdout, results, *asJSON); err != nil {
		return err
	}
	return errors.Join(errs...)
}

func runBinary(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("binary", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return fmt.Errorf("%w: want PATH and at least one FIELD", errUsage)
	}
	var ids []offsets.FieldID
	for _, name := range pos[1:] {
		id, err := offsets.ParseFieldID(name)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		ids = append(ids, id)
	}
	f, err := layout.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	values, ferr := f.Fields(ids)
	var missing *layout.MissingError
	if ferr != nil && !errors.As(ferr, &missing) {
		return ferr
	}
	var results []fieldResult
	for _, id := range ids {
		if v, ok := values[id]; ok {
			results = append(results, fieldResult{Field: id.String(), Offset: v.Offset, Size: v.Size, Type: v.Type, Provenance: "dwarf " + pos[0]})
		} else if missing != nil {
			results = append(results, fieldResult{Field: id.String(), Error: missing.Missing[id].Error()})
		}
	}
	if err := printFields(stdout, results, *asJSON); err != nil {
		return err
	}
	return ferr
}

func printFields(w io.Writer, results []fieldResult, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range results {
		if r.Error != "" {
			continue // reported on stderr with the exit status
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", r.Field, r.Offset, r.Size, r.Type, r.Provenance)
	}
	return tw.Flush()
}

func runVersions(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("versions", flag.ContinueOnError)
	data := fs.String("data", "", dataUsage)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want one MODULE", errUsage)
	}
	db, err := openDB(*data)
	if err != nil {
		return err
	}
	s, err := db.Shard(pos[0])
	if err != nil {
		return err
	}
	for _, line := range versionLines(s) {
		fmt.Fprintln(stdout, line)
	}
	return nil
}

// versionLines renders a shard's coverage: the version alone when every
// GOARCH built, else its status per GOARCH with the reason.
func versionLines(s *offsets.Shard) []string {
	t, err := s.Expand()
	if err != nil {
		return []string{err.Error()}
	}
	arches := make([]string, 0, len(t.Builds))
	for a := range t.Builds {
		arches = append(arches, a)
	}
	slices.Sort(arches)
	versions := map[string]bool{}
	var all []string
	for _, a := range arches {
		for _, v := range t.Versions(a) {
			if !versions[v] {
				versions[v] = true
				all = append(all, v)
			}
		}
	}
	slices.SortFunc(all, func(a, b string) int { return offsets.CompareVersions(s.Module, a, b) })
	var lines []string
	for _, v := range all {
		var parts []string
		allOK, same := true, true
		var first *offsets.Build
		for _, a := range arches {
			b, ok := t.Builds[a][v]
			if !ok {
				parts = append(parts, a+"=missing")
				allOK, same = false, false
				continue
			}
			if b.Status != offsets.StatusOK {
				allOK = false
			}
			if first == nil {
				first = &b
			} else if first.Status != b.Status || first.Reason != b.Reason {
				same = false
			}
			p := a + "=" + string(b.Status)
			if b.Reason != "" {
				p += " (" + oneLine(b.Reason) + ")"
			}
			parts = append(parts, p)
		}
		switch {
		case allOK:
			lines = append(lines, v)
		case same && first != nil:
			lines = append(lines, fmt.Sprintf("%s\t%s: %s", v, first.Status, oneLine(first.Reason)))
		default:
			lines = append(lines, v+"\t"+strings.Join(parts, " "))
		}
	}
	return lines
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

func runVerify(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	data := fs.String("data", "", dataUsage)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := offsets.Verify(dataFS(*data)); err != nil {
		return fmt.Errorf("database is not sound:\n%w", err)
	}
	db, err := openDB(*data)
	if err != nil {
		return err
	}
	for _, m := range db.Modules() {
		s, err := db.Shard(m)
		if err != nil {
			return err
		}
		for _, arch := range slices.Sorted(maps.Keys(s.Coverage)) {
			covs := s.Coverage[arch]
			n := map[offsets.Status]int{}
			for _, c := range covs {
				n[c.Status]++
			}
			fmt.Fprintf(stdout, "%s/%s: %d ok, %d unavailable, %d failed, %d fields\n", m, arch, n[offsets.StatusOK], n[offsets.StatusUnavailable], n[offsets.StatusFailed], len(s.Fields))
		}
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
