package offsets

import (
	"fmt"
	"strings"
)

// Constraint is a set of versions of one module written as comparisons
// joined by commas, all of which must hold: ">=v1.40.0", ">=v1.40.0,<v1.60.0",
// "<go1.21" for std. Versions are spelled as CanonicalVersion accepts them.
// The zero Constraint allows every version.
//
// The generator filters module versions with it, and field sets bound a
// field to the versions that have it ("FIELD >=v1.60.0").
type Constraint struct {
	Module string
	terms  []term
}

type term struct {
	op      string // ">=", ">", "<=", "<", "="
	version string // canonical
}

// ParseConstraint parses s for module. Operators are >=, >, <=, < and =
// (a bare version means =); white space around terms is ignored.
func ParseConstraint(module, s string) (Constraint, error) {
	c := Constraint{Module: module}
	if strings.TrimSpace(s) == "" {
		return c, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		op := "="
		for _, o := range []string{">=", "<=", ">", "<", "="} {
			if strings.HasPrefix(part, o) {
				op, part = o, strings.TrimSpace(part[len(o):])
				break
			}
		}
		if part == "" {
			return Constraint{}, fmt.Errorf("invalid version constraint %q: %q has no version", s, op)
		}
		v, err := CanonicalVersion(module, part)
		if err != nil || v == DevelVersion {
			return Constraint{}, fmt.Errorf("invalid version constraint %q: %q is not a version of %s", s, part, module)
		}
		c.terms = append(c.terms, term{op: op, version: v})
	}
	return c, nil
}

// Allows reports whether canonical version v satisfies every term.
func (c Constraint) Allows(v string) bool {
	for _, t := range c.terms {
		n := CompareVersions(c.Module, v, t.version)
		var ok bool
		switch t.op {
		case ">=":
			ok = n >= 0
		case ">":
			ok = n > 0
		case "<=":
			ok = n <= 0
		case "<":
			ok = n < 0
		default:
			ok = n == 0
		}
		if !ok {
			return false
		}
	}
	return true
}

// IsZero reports whether c allows every version.
func (c Constraint) IsZero() bool { return len(c.terms) == 0 }

// String returns the form ParseConstraint reads, with canonical versions.
func (c Constraint) String() string {
	parts := make([]string, len(c.terms))
	for i, t := range c.terms {
		parts[i] = t.op + t.version
	}
	return strings.Join(parts, ",")
}
