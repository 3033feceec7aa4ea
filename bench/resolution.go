package main

import (
	"context"
	"crypto/sha256"
	"debug/dwarf"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/offsetdb/offsetdb"
	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/offsets"
	httpclient "github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/client"
	httpserver "github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/server"
	"github.com/offsetdb/offsetdb/tracer/resolve"
)

// BigBinary describes the large target of section 3.
type BigBinary struct {
	Path       string `json:"path"`
	Bytes      int64  `json:"bytes"`
	DWARFBytes uint64 `json:"dwarf_bytes"` // .debug_* sections as stored (compressed)
	GoVersion  string `json:"go_version"`
	Modules    int    `json:"modules"`
	BuildTime  string `json:"build"` // "cached" or how long the build took
}

// ResolutionPath is one way of resolving the instrumentations' fields.
type ResolutionPath struct {
	Name string `json:"name"`
	// Process: a child process per run (wall time, ru_maxrss).
	Wall   Spread `json:"process_wall_ms"`
	MaxRSS Spread `json:"process_max_rss_bytes"`
	// InProcess: the resolution alone, in this process (runtime.MemStats).
	Time     Spread `json:"in_process_ms"`
	Bytes    Spread `json:"in_process_alloc_bytes"`
	Allocs   Spread `json:"in_process_allocs"`
	Command  string `json:"command"`
	Provides string `json:"provenance"` // what the fields' provenance said
}

// Resolution is section 3: offsets for a large binary, from the database,
// from its DWARF, and from a full stdlib walk of its DWARF (the baseline).
type Resolution struct {
	Binary BigBinary        `json:"binary"`
	Fields int              `json:"fields"`
	Rounds int              `json:"rounds"`
	Paths  []ResolutionPath `json:"paths"`
}

// fieldIDs are the fields the tracer's instrumentations need.
func fieldIDs() []offsets.FieldID {
	var ids []offsets.FieldID
	for _, f := range append(httpserver.Instrumentation().Fields, httpclient.Instrumentation().Fields...) {
		if !slices.Contains(ids, f.ID) {
			ids = append(ids, f.ID)
		}
	}
	return ids
}

// bigBinary builds bench/bigbinary once per content of its module and Go
// version, into ~/.cache/offsetdb-bench, and checks that it links the
// functions the tracer probes.
func (h *harness) bigBinary(ctx context.Context) (BigBinary, error) {
	src := filepath.Join(h.repo, "bench", "bigbinary")
	sum := sha256.New()
	for _, name := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return BigBinary{}, err
		}
		sum.Write(b)
	}
	goVersion, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return BigBinary{}, fmt.Errorf("go env GOVERSION: %w", err)
	}
	sum.Write(goVersion)
	cache, err := os.UserCacheDir()
	if err != nil {
		return BigBinary{}, err
	}
	path := filepath.Join(cache, "offsetdb-bench", "bigbinary-"+hex.EncodeToString(sum.Sum(nil))[:16])
	bb := BigBinary{Path: path, BuildTime: "cached"}
	if _, err := os.Stat(path); err != nil {
		h.logf("resolution: building the large binary (minutes the first time; cached in %s)", filepath.Dir(path))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return bb, err
		}
		start := time.Now()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", path+".tmp", ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			return bb, fmt.Errorf("build %s: %w: %s", src, err, out)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			return bb, err
		}
		bb.BuildTime = time.Since(start).Round(time.Second).String()
	}
	st, err := os.Stat(path)
	if err != nil {
		return bb, err
	}
	bb.Bytes = st.Size()
	ef, err := elf.Open(path)
	if err != nil {
		return bb, err
	}
	defer ef.Close()
	for _, s := range ef.Sections {
		if strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			bb.DWARFBytes += s.Size
		}
	}
	syms, err := ef.Symbols()
	if err != nil {
		return bb, fmt.Errorf("%s: symbols: %w", path, err)
	}
	want := map[string]bool{"net/http.serverHandler.ServeHTTP": false, "net/http.(*Transport).roundTrip": false}
	for _, s := range syms {
		if _, ok := want[s.Name]; ok {
			want[s.Name] = true
		}
	}
	for name, ok := range want {
		if !ok {
			return bb, fmt.Errorf("%s does not link %s", path, name)
		}
	}
	bin, err := gobinary.Open(path)
	if err != nil {
		return bb, err
	}
	defer bin.Close()
	bb.GoVersion, bb.Modules = bin.GoVersionRaw, len(bin.Modules)
	return bb, nil
}

// resolution measures the three ways, alternating over rounds.
func (h *harness) resolution(ctx context.Context) (*Resolution, error) {
	bb, err := h.bigBinary(ctx)
	if err != nil {
		return nil, err
	}
	if bb.Bytes < 100<<20 {
		h.logf("resolution: warning: the large binary is only %d MB", bb.Bytes>>20)
	}
	ids := fieldIDs()
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	bin, err := gobinary.Open(bb.Path)
	if err != nil {
		return nil, err
	}
	defer bin.Close()

	type path struct {
		name    string
		argv    []string
		check   func(stdout []byte) (string, error)
		inProc  func() (string, error)
		samples map[string][]float64
	}
	paths := []*path{
		{
			name: "database (tracer inspect)", argv: []string{h.tracerBin, "inspect", "--json", bb.Path},
			check: func(out []byte) (string, error) { return inspectProvenance(out, "database") },
			inProc: func() (string, error) {
				db, err := offsets.Open(offsetdb.Data())
				if err != nil {
					return "", err
				}
				return provenanceOf((&resolve.Resolver{DBs: []*offsets.DB{db}, NoDWARF: true}).Resolve(bin, ids), "database")
			},
		},
		{
			name: "DWARF fallback (tracer inspect --no-embedded-offsets)", argv: []string{h.tracerBin, "inspect", "--json", "--no-embedded-offsets", bb.Path},
			check: func(out []byte) (string, error) { return inspectProvenance(out, "dwarf") },
			inProc: func() (string, error) {
				return provenanceOf((&resolve.Resolver{}).Resolve(bin, ids), "dwarf")
			},
		},
		{
			name: "baseline: full debug/dwarf walk, every type decoded", argv: append([]string{self, "fullwalk", bb.Path}, idStrings(ids)...),
			check: func(out []byte) (string, error) {
				if !strings.HasPrefix(string(out), "resolved ") {
					return "", fmt.Errorf("fullwalk said %q", out)
				}
				return "full walk: " + strings.TrimSpace(string(out)), nil
			},
			inProc: func() (string, error) {
				found, _, err := fullWalk(bb.Path, ids)
				return fmt.Sprintf("full walk: %d fields", len(found)), err
			},
		},
	}
	for _, p := range paths {
		p.samples = map[string][]float64{}
	}
	res := &Resolution{Binary: bb, Fields: len(ids), Rounds: h.resolveRounds}
	provs := map[string]string{}
	for round := range h.resolveRounds {
		h.logf("resolution: round %d of %d", round+1, h.resolveRounds)
		order := slices.Clone(paths)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, p := range order {
			wall, rss, out, err := timedRun(ctx, "", nil, p.argv[0], p.argv[1:]...)
			if err != nil {
				return nil, err
			}
			prov, err := p.check(out)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.name, err)
			}
			provs[p.name] = prov
			p.samples["wall"] = append(p.samples["wall"], ms(wall))
			p.samples["rss"] = append(p.samples["rss"], float64(rss))

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			if _, err := p.inProc(); err != nil {
				return nil, fmt.Errorf("%s in process: %w", p.name, err)
			}
			d := time.Since(start)
			runtime.ReadMemStats(&after)
			p.samples["time"] = append(p.samples["time"], ms(d))
			p.samples["bytes"] = append(p.samples["bytes"], float64(after.TotalAlloc-before.TotalAlloc))
			p.samples["allocs"] = append(p.samples["allocs"], float64(after.Mallocs-before.Mallocs))
		}
	}
	for _, p := range paths {
		argv := slices.Clone(p.argv)
		argv[0] = filepath.Base(argv[0])
		if len(argv) > 5 { // the full walk: its field list
			argv = append(argv[:3], "FIELD...")
		}
		res.Paths = append(res.Paths, ResolutionPath{
			Name: p.name, Command: strings.Join(argv, " "), Provides: provs[p.name],
			Wall: newSpread(p.samples["wall"]), MaxRSS: newSpread(p.samples["rss"]),
			Time: newSpread(p.samples["time"]), Bytes: newSpread(p.samples["bytes"]), Allocs: newSpread(p.samples["allocs"]),
		})
	}
	return res, nil
}

func idStrings(ids []offsets.FieldID) []string {
	var ss []string
	for _, id := range ids {
		ss = append(ss, id.String())
	}
	return ss
}

// provenanceOf checks that every resolved or absent field came from the
// expected source ("database" or "dwarf") and summarises the provenances.
func provenanceOf(fields map[offsets.FieldID]resolve.Field, source string) (string, error) {
	var provs []string
	for id, f := range fields {
		if f.Status == resolve.Unresolved {
			return "", fmt.Errorf("%s unresolved: %v", id, f.Err)
		}
		if !strings.HasPrefix(f.Provenance, source) {
			return "", fmt.Errorf("%s came from %q, not from the %s", id, f.Provenance, source)
		}
		provs = append(provs, f.Provenance)
	}
	slices.Sort(provs)
	return strings.Join(slices.Compact(provs), "; "), nil
}

// inspectProvenance does provenanceOf on `tracer inspect --json` output.
func inspectProvenance(out []byte, source string) (string, error) {
	var in struct {
		Instrumentations []struct {
			Name    string `json:"name"`
			Enabled bool   `json:"enabled"`
			Reason  string `json:"reason"`
			Fields  []struct {
				Field, Status, Provenance, Error string
			} `json:"fields"`
		} `json:"instrumentations"`
	}
	if err := json.Unmarshal(out, &in); err != nil {
		return "", fmt.Errorf("tracer inspect --json: %w", err)
	}
	var provs []string
	for _, inst := range in.Instrumentations {
		if !inst.Enabled {
			return "", fmt.Errorf("tracer inspect: %s disabled: %s", inst.Name, inst.Reason)
		}
		for _, f := range inst.Fields {
			if f.Status == "unresolved" || !strings.HasPrefix(f.Provenance, source) {
				return "", fmt.Errorf("tracer inspect: %s is %s from %q, want the %s", f.Field, f.Status, f.Provenance, source)
			}
			p := f.Provenance
			if source == "dwarf" {
				p = "dwarf"
			}
			provs = append(provs, p)
		}
	}
	if len(provs) == 0 {
		return "", errors.New("tracer inspect reported no fields")
	}
	slices.Sort(provs)
	return strings.Join(slices.Compact(provs), "; "), nil
}

// fullWalk is the baseline: what a reader that indexes the whole DWARF does.
// It visits every entry with the standard library's debug/dwarf, decodes
// every type entry with (*dwarf.Data).Type, indexes the structs by name,
// and only then looks the fields up. Fields whose struct or member does not
// exist are returned in missing.
func fullWalk(path string, ids []offsets.FieldID) (found map[offsets.FieldID]offsets.Value, missing []offsets.FieldID, err error) {
	ef, err := elf.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer ef.Close()
	d, err := ef.DWARF()
	if err != nil {
		return nil, nil, err
	}
	structs := map[string]*dwarf.StructType{}
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			return nil, nil, err
		}
		if e == nil {
			break
		}
		switch e.Tag {
		case dwarf.TagArrayType, dwarf.TagBaseType, dwarf.TagPointerType, dwarf.TagStructType,
			dwarf.TagSubroutineType, dwarf.TagTypedef, dwarf.TagUnionType, dwarf.TagUnspecifiedType:
		default:
			continue
		}
		t, err := d.Type(e.Offset)
		if err != nil {
			continue // a type debug/dwarf cannot decode; peers skip them too
		}
		if st, ok := t.(*dwarf.StructType); ok && st.StructName != "" {
			structs[st.StructName] = st
		}
	}
	found = map[offsets.FieldID]offsets.Value{}
	for _, id := range ids {
		st, ok := structs[id.TypeName()]
		if !ok {
			missing = append(missing, id)
			continue
		}
		var t dwarf.Type = st
		var off int64
		ok = true
		for _, name := range id.Path() {
			for td, isTD := t.(*dwarf.TypedefType); isTD; td, isTD = t.(*dwarf.TypedefType) {
				t = td.Type
			}
			st, isStruct := t.(*dwarf.StructType)
			if !isStruct {
				ok = false
				break
			}
			i := slices.IndexFunc(st.Field, func(f *dwarf.StructField) bool { return f.Name == name })
			if i < 0 {
				ok = false
				break
			}
			off += st.Field[i].ByteOffset
			t = st.Field[i].Type
		}
		if !ok {
			missing = append(missing, id)
			continue
		}
		found[id] = offsets.Value{Offset: uint64(off), Size: uint64(t.Size()), Type: t.String()}
	}
	return found, missing, nil
}

// runFullWalk is the "fullwalk PATH FIELD..." subcommand: the baseline in
// a process of its own, so that its peak RSS can be measured.
func runFullWalk(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: bench fullwalk PATH FIELD [FIELD ...]")
	}
	var ids []offsets.FieldID
	for _, s := range args[1:] {
		id, err := offsets.ParseFieldID(s)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	found, missing, err := fullWalk(args[0], ids)
	if err != nil {
		return err
	}
	fmt.Printf("resolved %d fields, %d absent\n", len(found), len(missing))
	return nil
}
