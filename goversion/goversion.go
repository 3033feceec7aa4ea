// Package goversion parses and orders Go release versions as they appear in
// toolchain names ("go1.22.5", "go1.22rc1"), in runtime.Version strings
// ("go1.21.0 X:boringcrypto") and in user input ("1.22.5").
//
// The database stores std offsets per Go release, and the tracer reads the
// version a target was built with from its build info; both sides must agree
// on what "the same release" means, so the rules live here once. Notably,
// releases before Go 1.21 name their first release "go1.N" while later ones
// use "go1.N.0"; both spellings parse to the same Version.
//
// Binaries built by the old BoringCrypto fork of Go (dev.boringcrypto, Go
// 1.8 to 1.18, before boringcrypto became a GOEXPERIMENT in Go 1.19) report
// versions such as "go1.16.4b7": the release the fork is based on plus its
// BoringCrypto revision. They parse to that release (go1.16.4), because the
// fork changed only crypto internals, not the layouts the database records.
package goversion

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrDevel reports a development build ("devel +abc", "devel go1.23-abc"):
// such a toolchain matches no release, so its layouts can only come from the
// binary's own DWARF.
var ErrDevel = errors.New("development Go version")

// Version is a Go release. Pre is empty for a release and "rc1", "beta2"
// for pre-releases.
type Version struct {
	Major, Minor, Patch int
	Pre                 string
}

// Parse reads a Go version in any of the spellings the toolchain uses.
//
// Accepted: "go1.22.5", "1.22.5", "go1.22", "go1.22rc1", "go1.9beta2",
// "go1.21.0 X:boringcrypto" (build settings after a space are ignored; see
// Experiments), "go1.22.5-custom" (a vendor suffix after '-' is ignored),
// "go1.16.4b7" and "go1.16b7" (the BoringCrypto fork's revision suffix is
// ignored: see the package documentation). "devel ..." yields ErrDevel.
func Parse(s string) (Version, error) {
	orig := s
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "devel") {
		return Version{}, fmt.Errorf("%q: %w", orig, ErrDevel)
	}
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimPrefix(s, "go")
	if i := strings.IndexByte(s, '-'); i >= 0 {
		s = s[:i]
	}
	var v Version
	// Split off a pre-release suffix such as "rc1" or "beta2".
	for _, tag := range []string{"rc", "beta", "alpha"} {
		if i := strings.Index(s, tag); i >= 0 {
			n, err := strconv.Atoi(s[i+len(tag):])
			if err != nil || n < 1 {
				return Version{}, fmt.Errorf("invalid Go version %q: bad %s number", orig, tag)
			}
			v.Pre = s[i:]
			s = s[:i]
			break
		}
	}
	parts := strings.Split(s, ".")
	if v.Pre == "" {
		parts[len(parts)-1] = trimBoringRevision(parts[len(parts)-1])
	}
	if len(parts) < 2 || len(parts) > 3 || (v.Pre != "" && len(parts) != 2) {
		return Version{}, fmt.Errorf("invalid Go version %q: want go1.N, go1.N.P or go1.NrcK", orig)
	}
	nums := make([]int, 3)
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || (len(p) > 1 && p[0] == '0') {
			return Version{}, fmt.Errorf("invalid Go version %q: %q is not a number", orig, p)
		}
		nums[i] = n
	}
	v.Major, v.Minor, v.Patch = nums[0], nums[1], nums[2]
	if v.Major != 1 {
		return Version{}, fmt.Errorf("invalid Go version %q: only Go 1.x is known", orig)
	}
	return v, nil
}

// trimBoringRevision removes the BoringCrypto fork's revision suffix from
// the last number of a version: "4b7" becomes "4". Anything else, "4b" or
// "4bx" say, is returned unchanged and refused by the caller.
func trimBoringRevision(p string) string {
	num, rev, ok := strings.Cut(p, "b")
	if !ok || num == "" || rev == "" || (len(rev) > 1 && rev[0] == '0') {
		return p
	}
	for _, s := range []string{num, rev} {
		if strings.Trim(s, "0123456789") != "" {
			return p
		}
	}
	return num
}

// MustParse is Parse for constants in code and tests; it panics on error.
func MustParse(s string) Version {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

// Experiments returns the GOEXPERIMENT settings recorded in a runtime.Version
// string such as "go1.21.0 X:boringcrypto,loopvar". Some experiments change
// struct layouts, so callers must not treat such a build as the plain release.
//
// Go 1.26 writes the suffix with a dash instead ("go1.26.8-X:boringcrypto");
// both spellings are read.
func Experiments(s string) []string {
	var out []string
	for _, f := range strings.Fields(strings.ReplaceAll(s, "-X:", " X:")) {
		if x, ok := strings.CutPrefix(f, "X:"); ok {
			out = append(out, strings.Split(x, ",")...)
		}
	}
	return out
}

// String returns the toolchain name of v: "go1.12" for the first release of
// a line before Go 1.21, "go1.21.0" from Go 1.21 on, "go1.22rc1" for
// pre-releases.
func (v Version) String() string {
	switch {
	case v.Pre != "":
		return fmt.Sprintf("go%d.%d%s", v.Major, v.Minor, v.Pre)
	case v.Patch == 0 && v.Major == 1 && v.Minor < 21:
		return fmt.Sprintf("go%d.%d", v.Major, v.Minor)
	}
	return fmt.Sprintf("go%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// Line returns the minor release line of v, such as "go1.22".
func (v Version) Line() string { return fmt.Sprintf("go%d.%d", v.Major, v.Minor) }

// IsRelease reports whether v is a final release rather than a pre-release.
func (v Version) IsRelease() bool { return v.Pre == "" }

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than w.
// Pre-releases of a line sort before its first release: go1.22beta1 <
// go1.22rc1 < go1.22.0.
func (v Version) Compare(w Version) int {
	if c := cmpInt(v.Major, w.Major); c != 0 {
		return c
	}
	if c := cmpInt(v.Minor, w.Minor); c != 0 {
		return c
	}
	if v.Pre != "" || w.Pre != "" {
		switch {
		case v.Pre == "":
			return +1
		case w.Pre == "":
			return -1
		}
		return comparePre(v.Pre, w.Pre)
	}
	return cmpInt(v.Patch, w.Patch)
}

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool { return v.Compare(w) < 0 }

func comparePre(a, b string) int {
	rank := func(s string) (int, int) {
		for i, tag := range []string{"alpha", "beta", "rc"} {
			if n, ok := strings.CutPrefix(s, tag); ok {
				k, _ := strconv.Atoi(n)
				return i, k
			}
		}
		return -1, 0
	}
	ar, an := rank(a)
	br, bn := rank(b)
	if c := cmpInt(ar, br); c != 0 {
		return c
	}
	return cmpInt(an, bn)
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return +1
	}
	return 0
}
