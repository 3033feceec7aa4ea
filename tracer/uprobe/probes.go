package uprobe

import (
	"errors"
	"fmt"
	"strings"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/offsets"
)

// ErrProbeSkipped reports a probe that will not be attached to a binary:
// its function is missing, or the binary's version of the function's
// module is outside the probe's Versions.
var ErrProbeSkipped = errors.New("probe skipped")

// Located is a probe whose function was found in a binary.
type Located struct {
	Probe    Probe
	Function gobinary.Function
	// Calls are the file offsets of Function's calls of Probe.CallsTo,
	// when it is set: where Probe.Entry is placed.
	Calls []uint64
	// Assumed, when set, says the probe's version bound was checked
	// against a version the binary does not prove: the module is replaced
	// by a local directory, whose code has no version, and the version it
	// replaces was used.
	Assumed string
}

// Skipped is a probe that will not be attached to a binary, and why.
type Skipped struct {
	Probe Probe
	// Err wraps ErrProbeSkipped and says what was missing or out of bounds.
	Err error
	// OutsideVersions says the probe is for other versions of its module
	// than the binary's: the expected case for the alternatives of a
	// function whose signature changed, not a loss.
	OutsideVersions bool
	// NotLinked says no module of the binary provides the probe's package:
	// an optional probe of a library the program does not use (x/net's
	// HTTP/2 server in a service without it), not a loss.
	NotLinked bool
}

// Locate decides which of inst's probes can be attached to bin and finds
// their functions.
//
// A probe is skipped when its Versions bound excludes the version of its
// symbol's module in bin (a grpc probe for >=v1.8.0 in a binary with grpc
// v1.7.0), or when its function is not in bin. Skipping an Optional probe
// is reported in skipped; skipping a required one is the returned error,
// which wraps ErrProbeSkipped (or the error that made the binary
// unreadable). Locate reads the binary's function table once and caches it.
func (inst *Instrumentation) Locate(bin *gobinary.Binary) (located []Located, skipped []Skipped, err error) {
	for _, p := range inst.Probes {
		fn, assumed, outside, err := locate(bin, p)
		_, linked := bin.PackageModule(gobinary.SymbolPackage(p.Symbol))
		var calls []uint64
		if err == nil && p.CallsTo != "" {
			calls, err = callSites(bin, p)
		}
		if err == nil {
			located = append(located, Located{Probe: p, Function: fn, Calls: calls, Assumed: assumed})
			continue
		}
		if !errors.Is(err, ErrProbeSkipped) || !p.Optional {
			return nil, nil, fmt.Errorf("instrumentation %s: %w", inst.Name, err)
		}
		skipped = append(skipped, Skipped{Probe: p, Err: err, OutsideVersions: outside, NotLinked: !linked})
	}
	if len(located) == 0 {
		return nil, skipped, fmt.Errorf("instrumentation %s: %w: no probe fits %s%s", inst.Name, ErrProbeSkipped, bin.Path, skipReasons(skipped))
	}
	return located, skipped, nil
}

// locate finds the function of p in bin, if p's bound allows bin; outside
// says the bound excluded it.
func locate(bin *gobinary.Binary, p Probe) (fn gobinary.Function, assumed string, outside bool, err error) {
	if p.Versions != "" {
		if assumed, err = checkBound(bin, p); err != nil {
			return fn, "", true, err
		}
	}
	if !p.StackABI && StackABI(bin) {
		return fn, "", false, fmt.Errorf("%w: %s: its programs are not made for the stack-based calling convention of %s (%s passes arguments in registers from %s on)",
			ErrProbeSkipped, p.Symbol, bin.GoVersionRaw, bin.Arch, registerABI[bin.Arch])
	}
	fn, err = bin.Function(p.Symbol)
	switch {
	case errors.Is(err, gobinary.ErrSymbolNotFound):
		return fn, "", false, fmt.Errorf("%w: function %s not in the binary (not linked in, or renamed): %w", ErrProbeSkipped, p.Symbol, err)
	case err != nil:
		return fn, "", false, fmt.Errorf("locate function %s: %w", p.Symbol, err)
	case fn.EntryOffset == 0:
		return fn, "", false, fmt.Errorf("function %s: file offset 0", p.Symbol)
	case p.Return != "" && len(fn.Returns) == 0:
		return fn, "", false, fmt.Errorf("function %s has no RET instruction for return program %s", p.Symbol, p.Return)
	case p.Return != "" && p.StackResults > 0 && StackABI(bin) && fn.Args < int64(p.StackResults):
		return fn, "", false, fmt.Errorf("%w: %s: its results are %d bytes, but the function table gives %d bytes for its arguments and results: another signature",
			ErrProbeSkipped, p.Symbol, p.StackResults, fn.Args)
	}
	return fn, assumed, false, nil
}

// checkBound checks the version of p's module in bin against p.Versions.
// For a module replaced by a local directory, whose code has no version,
// it checks the version the directory replaces and says so in assumed:
// a local replacement is most often a fork or checkout of that version.
func checkBound(bin *gobinary.Binary, p Probe) (assumed string, err error) {
	pkg := gobinary.SymbolPackage(p.Symbol)
	m, ok := bin.PackageModule(pkg)
	if !ok {
		return "", fmt.Errorf("%w: %s: no module of the binary provides package %s", ErrProbeSkipped, p.Symbol, pkg)
	}
	version := m.EffectiveVersion()
	if m.Path == gobinary.StdModule {
		if bin.GoVersionErr != nil {
			return "", fmt.Errorf("%w: %s needs Go %s; the binary's Go version is unknown", ErrProbeSkipped, p.Symbol, p.Versions)
		}
		version = bin.GoVersion.String()
	}
	c, err := offsets.ParseConstraint(m.Path, p.Versions)
	if err != nil {
		return "", fmt.Errorf("probe %s: %w", p.Symbol, err)
	}
	v, err := offsets.CanonicalVersion(m.Path, version)
	if (err != nil || v == offsets.DevelVersion) && m.Replace != nil {
		if rv, rerr := offsets.CanonicalVersion(m.Path, m.Version); rerr == nil && rv != offsets.DevelVersion {
			v, err = rv, nil
			assumed = fmt.Sprintf("%s is replaced by %s, whose version is unknown: probes are chosen for the version it replaces, %s", m.Path, m.Replace.Path, rv)
		}
	}
	if err != nil || v == offsets.DevelVersion {
		return "", fmt.Errorf("%w: %s needs %s %s; the binary's version of it (%q) is unknown", ErrProbeSkipped, p.Symbol, m.Path, p.Versions, version)
	}
	if !c.Allows(v) {
		return "", fmt.Errorf("%w: %s needs %s %s; the binary has %s", ErrProbeSkipped, p.Symbol, m.Path, p.Versions, v)
	}
	return assumed, nil
}

// skipReasons says why the probes of an instrumentation none of whose
// probes fits were skipped: those skipped for another reason than their
// version bound (the alternatives for other versions are expected to
// be), or all when every one was outside its bound.
func skipReasons(skipped []Skipped) string {
	var reasons []string
	for _, outside := range []bool{false, true} {
		for _, s := range skipped {
			if s.OutsideVersions == outside {
				reasons = append(reasons, strings.TrimPrefix(s.Err.Error(), ErrProbeSkipped.Error()+": "))
			}
		}
		if len(reasons) > 0 {
			break
		}
	}
	if len(reasons) == 0 {
		return ""
	}
	return ": " + strings.Join(reasons, "; ")
}

// callSites finds where p's function calls p.CallsTo.
func callSites(bin *gobinary.Binary, p Probe) ([]uint64, error) {
	calls, err := bin.CallSites(p.Symbol, p.CallsTo)
	switch {
	case errors.Is(err, gobinary.ErrSymbolNotFound):
		return nil, fmt.Errorf("%w: function %s not in the binary (not linked in, or renamed): %w", ErrProbeSkipped, p.CallsTo, err)
	case err != nil:
		return nil, fmt.Errorf("locate the calls of %s in %s: %w", p.CallsTo, p.Symbol, err)
	case len(calls) == 0:
		return nil, fmt.Errorf("%w: %s does not call %s directly (inlined, or another version)", ErrProbeSkipped, p.Symbol, p.CallsTo)
	}
	return calls, nil
}
