package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsetgen/generate"
	"github.com/offsetdb/offsetdb/offsetgen/modgen"
	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
)

func runGenerate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	modules := fs.String("modules", "std", "comma-separated modules to generate")
	arches := fs.String("arch", "amd64,arm64", "comma-separated GOARCHes")
	since := fs.String("since", "1.12", "oldest Go release to cover")
	until := fs.String("until", "", "newest Go release line to cover, e.g. 1.22 (default: all)")
	versions := fs.String("versions", "", "comma-separated Go releases (std) or module versions (other modules) to (re)build instead of listing the proxy")
	constraint := fs.String("constraint", "", "module versions to cover, e.g. '>=v1.60.0' or '>=v1.60.0,<v1.70.0' (modules other than std)")
	pre := fs.Bool("pre", false, "also build pre-releases: Go betas and release candidates for std, pre-release versions for other modules")
	compareGo := fs.Bool("compare-go", false, "build each module version with the oldest fitting Go release too, and record fields whose layout differs as depending on the target's Go release, bisecting the Go lines in between to find the release that changed it (modules other than std; doubles the cost, plus about log2(lines) builds per version that differs)")
	workers := fs.Int("workers", max(1, runtime.NumCPU()/2), "toolchains (std) or module versions (other modules) processed in parallel (each build uses every core)")
	cache := fs.String("cache", defaultCacheDir(), "cache directory for toolchains and build scratch space")
	out := fs.String("out", "data", "database directory to update")
	proxy := fs.String("proxy", toolchain.ProxyURLFromEnv(), "Go module proxy URL (default from GOPROXY)")
	keep := fs.Bool("keep-toolchains", false, "keep unpacked toolchains in the cache (about 230 MB each)")
	retry := fs.Bool("retry-failed", false, "rebuild versions recorded as failed")
	recheck := fs.Bool("recheck", false, "ask the proxy again about every release the database already records (a full listing)")
	goexperiment := fs.String("goexperiment", "", "build std probes with these GOEXPERIMENTs (e.g. boringcrypto or boringcrypto,jsonv2; boringcrypto needs gcc, and gcc-aarch64-linux-gnu for arm64) into a shard of their own beside std's")
	recheckUnavailable := fs.Bool("recheck-unavailable", false, "ask the proxy again about the releases recorded unavailable (one request each), and build those it serves now (std)")
	report := fs.String("report", "", "write a per-version cost report (markdown) to this file: a table for std, one per other module")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	sinceV, err := goversion.Parse(*since)
	if err != nil {
		return fmt.Errorf("%w: --since: %v", errUsage, err)
	}
	var untilV goversion.Version
	if *until != "" {
		if untilV, err = goversion.Parse(*until); err != nil {
			return fmt.Errorf("%w: --until: %v", errUsage, err)
		}
	}
	if mods := splitList(*modules); *versions != "" && slices.Contains(mods, offsets.StdModule) && len(mods) > 1 {
		return fmt.Errorf("%w: --versions names Go releases for std and module versions for other modules: generate std and the others in separate runs", errUsage)
	}
	var only []goversion.Version
	for _, s := range splitList(*versions) {
		if !slices.Contains(splitList(*modules), offsets.StdModule) {
			break // module versions, read per module below
		}
		v, err := goversion.Parse(s)
		if err != nil {
			return fmt.Errorf("%w: --versions: %v", errUsage, err)
		}
		only = append(only, v)
	}
	archList := splitList(*arches)
	for _, a := range archList {
		if !slices.Contains([]string{"amd64", "arm64"}, a) {
			return fmt.Errorf("%w: --arch %s: supported are amd64 and arm64", errUsage, a)
		}
	}
	if err := os.MkdirAll(*cache, 0o755); err != nil {
		return fmt.Errorf("cache directory: %w", err)
	}
	reportFile := &reportWriter{path: *report}
	for _, m := range splitList(*modules) {
		set, err := fieldset.Load(m)
		if err != nil {
			return err
		}
		if m != offsets.StdModule {
			if *goexperiment != "" {
				return fmt.Errorf("%w: --goexperiment builds the standard library's probes (--modules std); module layouts are recorded for default builds only", errUsage)
			}
			mr := moduleRun{constraint: *constraint, pre: *pre, compareGo: *compareGo, retry: *retry, versions: splitList(*versions),
				arches: archList, workers: *workers, cache: *cache, out: *out, proxy: *proxy}
			if err := generateModule(ctx, set, mr, reportFile, stdout); err != nil {
				return err
			}
			continue
		}
		cfg := generate.Config{
			Set: set, Arches: archList, Since: sinceV, Until: untilV, Versions: only, Workers: *workers,
			CacheDir: *cache, OutDir: *out, KeepToolchains: *keep, RetryFailed: *retry, Recheck: *recheck,
			RecheckUnavailable: *recheckUnavailable, Experiments: splitList(*goexperiment),
			Proxy:    &toolchain.Proxy{URL: *proxy, ConfigDir: filepath.Join(*cache, "sumdb"), IncludePre: *pre},
			Log:      slog.Default(),
			Progress: os.Stderr,
		}
		rep, err := generate.Run(ctx, cfg)
		if rep != nil {
			printReport(stdout, cfg.ModuleName(), rep)
			table := costTable(rep)
			if reportFile.started {
				table = "\n## std\n\n" + table
			}
			if werr := reportFile.write(table); werr != nil {
				return werr
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func defaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "offsetdb")
	}
	return filepath.Join(os.TempDir(), "offsetdb-cache")
}

func printReport(w io.Writer, module string, r *generate.Report) {
	fmt.Fprintf(w, "%s: %d releases listed, %d probes built, %d already up to date, %d versions unavailable, %d probes failed, in %s\n",
		module, r.Releases, r.Built, r.UpToDate, r.Unavailable, r.Failed, r.Wall.Round(time.Millisecond))
	if len(r.Costs) > 0 {
		var sum generate.Cost
		sum.Build, sum.Extract = map[string]time.Duration{}, map[string]time.Duration{}
		for _, c := range r.Costs {
			sum.Download += c.Download
			sum.Unpack += c.Unpack
			sum.Verify += c.Verify
			for a, d := range c.Build {
				sum.Build[a] += d
				sum.Extract[a] += c.Extract[a]
			}
		}
		n := time.Duration(len(r.Costs))
		fmt.Fprintf(w, "mean per version: download %s, verify %s, unpack %s", (sum.Download / n).Round(time.Millisecond), (sum.Verify / n).Round(time.Millisecond), (sum.Unpack / n).Round(time.Millisecond))
		for _, a := range slices.Sorted(maps.Keys(sum.Build)) {
			fmt.Fprintf(w, ", build/%s %s, extract/%s %s", a, (sum.Build[a] / n).Round(time.Millisecond), a, (sum.Extract[a] / n).Round(time.Millisecond))
		}
		fmt.Fprintln(w)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintln(w, "warning:", warn)
	}
	for _, line := range r.AgainstDefault {
		fmt.Fprintln(w, line)
	}
}

func costTable(r *generate.Report) string {
	var b strings.Builder
	b.WriteString("| version | download | verify | unpack | build amd64 | extract amd64 | build arm64 | extract arm64 |\n|---|---|---|---|---|---|---|---|\n")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
	for _, c := range r.Costs {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", c.Version, ms(c.Download), ms(c.Verify), ms(c.Unpack),
			ms(c.Build["amd64"]), ms(c.Extract["amd64"]), ms(c.Build["arm64"]), ms(c.Extract["arm64"]))
	}
	return b.String()
}

// reportWriter writes the --report file: the first table of a run
// replaces the file, the next ones (one per module) are appended to it.
type reportWriter struct {
	path    string // "" for no report
	started bool
}

func (r *reportWriter) write(text string) error {
	if r.path == "" {
		return nil
	}
	flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if r.started {
		flag = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(r.path, flag, 0o644)
	if err != nil {
		return fmt.Errorf("cost report: %w", err)
	}
	r.started = true
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return fmt.Errorf("cost report: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cost report: %w", err)
	}
	return nil
}

// moduleRun holds the generate flags a module other than std uses.
type moduleRun struct {
	constraint            string
	pre, compareGo, retry bool
	versions, arches      []string
	workers               int
	cache, out, proxy     string
}

// generateModule runs the generator of a module other than std, prints its
// report and adds its cost table to the --report file.
func generateModule(ctx context.Context, set *fieldset.Set, mr moduleRun, report *reportWriter, stdout io.Writer) error {
	c, err := offsets.ParseConstraint(set.Module, mr.constraint)
	if err != nil {
		return fmt.Errorf("%w: --constraint: %v", errUsage, err)
	}
	for _, v := range mr.versions {
		if _, err := offsets.CanonicalVersion(set.Module, v); err != nil {
			return fmt.Errorf("%w: --versions: %v", errUsage, err)
		}
	}
	rep, err := modgen.Run(ctx, modgen.Config{
		Set: set, Arches: mr.arches, Constraint: c, IncludePre: mr.pre, Versions: mr.versions, CompareGo: mr.compareGo,
		CacheDir: mr.cache, OutDir: mr.out, RetryFailed: mr.retry, Workers: mr.workers, Log: slog.Default(),
		Proxy:    &toolchain.Proxy{URL: mr.proxy, ConfigDir: filepath.Join(mr.cache, "sumdb")},
		Progress: os.Stderr,
	})
	if rep != nil {
		printModuleReport(stdout, set.Module, mr.compareGo, rep)
		if werr := report.write(moduleCostTable(set.Module, report.started, rep)); werr != nil {
			return werr
		}
	}
	return err
}

func printModuleReport(w io.Writer, module string, compareGo bool, r *modgen.Report) {
	fmt.Fprintf(w, "%s: %d versions selected (%d not on the proxy's list, %d retracted skipped), %d probes built, %d already up to date, %d versions unavailable, %d probes failed",
		module, r.Versions, r.Discovered, len(r.Retracted), r.Built, r.UpToDate, r.Unavailable, r.Failed)
	if compareGo {
		fmt.Fprintf(w, ", %d field layouts depend on the Go release (%d bisection builds)", r.GoDependent, r.BisectBuilds)
	}
	if r.Pinned > 0 {
		fmt.Fprintf(w, ", %d versions without requirements built against dependencies of their release date", r.Pinned)
	}
	fmt.Fprintf(w, ", in %s\n", r.Wall.Round(time.Millisecond))
	if len(r.Costs) > 0 {
		build, read := map[string]time.Duration{}, map[string]time.Duration{}
		versions := map[string]bool{}
		for _, c := range r.Costs {
			build[c.Arch] += c.Build
			read[c.Arch] += c.Read
			versions[c.Version] = true
		}
		n := time.Duration(len(versions))
		fmt.Fprintf(w, "mean per version (%d probes over %d versions):", len(r.Costs), len(versions))
		for i, a := range slices.Sorted(maps.Keys(build)) {
			sep := ","
			if i == 0 {
				sep = ""
			}
			fmt.Fprintf(w, "%s build/%s %s, read/%s %s", sep, a, (build[a] / n).Round(time.Millisecond), a, (read[a] / n).Round(time.Millisecond))
		}
		fmt.Fprintln(w)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintln(w, "warning:", warn)
	}
}

// moduleCostTable is the --report section of a module: one row per probe
// built (a version has one per GOARCH and toolchain), under a heading
// with the module's name; after another table when appended.
func moduleCostTable(module string, appended bool, r *modgen.Report) string {
	var b strings.Builder
	if appended {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "## %s\n\n| version | arch | toolchain | build | read |\n|---|---|---|---|---|\n", module)
	for _, c := range r.Costs {
		fmt.Fprintf(&b, "| %s | %s | %s | %.2fs | %.2fs |\n", c.Version, c.Arch, c.Toolchain, c.Build.Seconds(), c.Read.Seconds())
	}
	return b.String()
}
