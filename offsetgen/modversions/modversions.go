// Package modversions lists the versions of a third-party module that the
// generator builds offsets for, from a Go module proxy.
//
// The proxy's list is taken as the set of published versions. Versions the
// module's author retracted (the retract directives of the go.mod of the
// module's latest version, as the go command reads them) are skipped, and
// so are pre-releases unless asked for, and "+incompatible" versions
// (another major version under the same path).
package modversions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
)

// ErrUnknownModule reports a module the proxy does not serve (404 or 410,
// or 403 for a module it refuses).
var ErrUnknownModule = errors.New("module not found on the module proxy")

// Options selects among a module's versions.
type Options struct {
	// Constraint keeps only the versions it allows ("" in offsets terms:
	// the zero Constraint keeps all).
	Constraint offsets.Constraint
	// IncludePre keeps pre-releases (v1.60.0-rc.1) and pseudo-versions.
	IncludePre bool
}

// Listing is the result of List.
type Listing struct {
	Module string
	// Versions are the versions to build, oldest first.
	Versions []string
	// Latest is the version whose go.mod was read for retractions.
	Latest string
	// Retracted lists the proxy's versions that were skipped as retracted,
	// with the author's rationale when the go.mod gives one.
	Retracted map[string]string
}

// List returns the versions of module the proxy serves, filtered as
// described by the package documentation and opts. It costs two requests
// (the list and the latest version's go.mod), three when the list is empty
// (@latest).
func List(ctx context.Context, proxy *toolchain.Proxy, modulePath string, opts Options) (*Listing, error) {
	if err := module.CheckPath(modulePath); err != nil {
		return nil, fmt.Errorf("module %q: %w", modulePath, err)
	}
	escaped, err := module.EscapePath(modulePath)
	if err != nil {
		return nil, err
	}
	base := "/" + escaped + "/@v/"
	data, err := proxy.GetFile(ctx, base+"list")
	if err != nil {
		return nil, notFound(modulePath, proxy, err)
	}
	var all []string
	for _, v := range strings.Fields(string(data)) {
		// "+incompatible" versions are another major version under the same path.
		if semver.IsValid(v) && semver.Build(v) == "" {
			all = append(all, v)
		}
	}
	semver.Sort(all)
	all = slices.Compact(all)

	latest := latestOf(all)
	if latest == "" {
		info, err := proxy.GetFile(ctx, "/"+escaped+"/@latest")
		if err != nil {
			return nil, notFound(modulePath, proxy, err)
		}
		var rev struct{ Version string }
		if err := json.Unmarshal(info, &rev); err != nil || !semver.IsValid(rev.Version) {
			return nil, fmt.Errorf("%s: proxy's @latest is unreadable: %q", modulePath, info)
		}
		latest = rev.Version
	}
	l := &Listing{Module: modulePath, Latest: latest, Retracted: map[string]string{}}
	ev, err := module.EscapeVersion(latest)
	if err != nil {
		return nil, err
	}
	modData, err := proxy.GetFile(ctx, base+ev+".mod")
	if err != nil {
		return nil, fmt.Errorf("read go.mod of %s@%s for retractions: %w", modulePath, latest, err)
	}
	mf, err := modfile.ParseLax(modulePath+"@"+latest+"/go.mod", modData, nil)
	if err != nil {
		return nil, fmt.Errorf("go.mod of %s@%s: %w", modulePath, latest, err)
	}
	for _, v := range all {
		if r := retraction(mf, v); r != nil {
			l.Retracted[v] = r.Rationale
			continue
		}
		if !opts.IncludePre && semver.Prerelease(v) != "" {
			continue
		}
		if !opts.Constraint.Allows(v) {
			continue
		}
		l.Versions = append(l.Versions, v)
	}
	return l, nil
}

// latestOf returns the version the go command calls latest: the highest
// release, else the highest pre-release; "" for an empty list.
func latestOf(sorted []string) string {
	for i := len(sorted) - 1; i >= 0; i-- {
		if semver.Prerelease(sorted[i]) == "" {
			return sorted[i]
		}
	}
	if len(sorted) > 0 {
		return sorted[len(sorted)-1]
	}
	return ""
}

func retraction(mf *modfile.File, v string) *modfile.Retract {
	for _, r := range mf.Retract {
		if semver.Compare(r.Low, v) <= 0 && semver.Compare(v, r.High) <= 0 {
			return r
		}
	}
	return nil
}

func notFound(modulePath string, proxy *toolchain.Proxy, err error) error {
	if errors.Is(err, toolchain.ErrUnavailable) {
		url := proxy.URL
		if url == "" {
			url = toolchain.DefaultProxyURL
		}
		return fmt.Errorf("%s: %w (%s: %v); check the module path, or set GOPROXY / --proxy to a proxy that serves it",
			modulePath, ErrUnknownModule, url, err)
	}
	return fmt.Errorf("list versions of %s: %w", modulePath, err)
}
