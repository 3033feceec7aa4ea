package publish

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/offsetdb/offsetdb/offsets"
)

// ErrPublishedChanged reports an update that would change what is already
// published; see Gate.
var ErrPublishedChanged = errors.New("the update changes published values")

// maxBody keeps pull request bodies and release notes under GitHub's limit
// (65536 characters).
const maxBody = 60000

// PublishedChanges lists, one line each, what an update would take back
// from users of the published database: a value that changed for a version
// that is ok in both, a version that was ok and is now failed, unavailable
// or missing, and a field no longer tracked. New versions and builds that
// now succeed are not in the list.
func PublishedChanges(d *offsets.Diff) []string {
	var out []string
	for _, m := range d.Modules {
		for _, c := range m.ValueChanges {
			out = append(out, fmt.Sprintf("%s@%s (%s) %s: %s -> %s", m.Module, c.Version, c.Arch, c.Field, offsets.FormatValues(c.Old, c.OldByGo), offsets.FormatValues(c.New, c.NewByGo)))
		}
		for _, c := range m.StatusChanges {
			if c.Old == offsets.StatusOK {
				out = append(out, fmt.Sprintf("%s@%s (%s): was ok, now %s", m.Module, c.Version, c.Arch, c.New))
			}
		}
		for _, v := range m.RemovedVersions {
			if v.Status == offsets.StatusOK {
				out = append(out, fmt.Sprintf("%s@%s (%s): was ok, now missing", m.Module, v.Version, v.Arch))
			}
		}
		for _, f := range m.RemovedFields {
			out = append(out, fmt.Sprintf("%s: field %s is no longer tracked", m.Module, f))
		}
	}
	return out
}

// Gate refuses an update that changes published values (PublishedChanges)
// unless reason says why they may change. Offsets users already rely on
// must not move silently: a change means a generator or toolchain bug, or
// a deliberate correction someone has to own.
func Gate(d *offsets.Diff, reason string) error {
	changes := PublishedChanges(d)
	if len(changes) == 0 || strings.TrimSpace(reason) != "" {
		return nil
	}
	const show = 50
	list := changes
	if len(list) > show {
		list = append(slices.Clone(list[:show]), fmt.Sprintf("... and %d more", len(changes)-show))
	}
	return fmt.Errorf("%w (%d); refusing to publish. If they are intended, run again with --allow-changes \"REASON\":\n  %s",
		ErrPublishedChanged, len(changes), strings.Join(list, "\n  "))
}

// summary is a one-line account of a diff, for titles and commit messages.
func summary(d *offsets.Diff) string {
	var versions []string
	added, removed, status, changed := 0, 0, 0, 0
	for _, m := range d.Modules {
		for _, v := range m.AddedVersions {
			name := v.Version
			if m.Module != offsets.StdModule {
				name = m.Module + "@" + v.Version
			}
			if !slices.Contains(versions, name) {
				versions = append(versions, name)
			}
		}
		added += len(m.AddedVersions)
		removed += len(m.RemovedVersions)
		status += len(m.StatusChanges)
		changed += len(m.ValueChanges)
	}
	var parts []string
	switch {
	case len(versions) > 0 && len(versions) <= 3:
		parts = append(parts, "add "+strings.Join(versions, ", "))
	case len(versions) > 3:
		parts = append(parts, fmt.Sprintf("add %d versions (%s ... %s)", len(versions), versions[0], versions[len(versions)-1]))
	}
	if status > 0 {
		parts = append(parts, plural(status, "status change"))
	}
	if removed > 0 {
		parts = append(parts, plural(removed, "removed build"))
	}
	if changed > 0 {
		parts = append(parts, plural(changed, "changed value"))
	}
	if len(parts) == 0 {
		return "update database"
	}
	return strings.Join(parts, ", ")
}

// Title is the pull request title for a diff.
func Title(d *offsets.Diff) string { return "offsets: " + summary(d) }

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// changelog renders a diff as markdown: per module, the new versions (a
// row per version, a column per GOARCH with its status), status changes,
// removed builds and changed offsets.
func (p *Publisher) changelog(intro string, u Update) string {
	var b strings.Builder
	b.WriteString(intro + "\n")
	if u.AllowChanges != "" {
		fmt.Fprintf(&b, "\n> **Published values change.** Allowed with the reason: %s\n", mdCell(u.AllowChanges))
	}
	for _, m := range u.Diff.Modules {
		fmt.Fprintf(&b, "\n## `%s`", m.Module)
		switch {
		case m.Added:
			b.WriteString(" (new module)")
		case m.Removed:
			b.WriteString(" (module removed)")
		}
		b.WriteString("\n")
		if len(m.AddedFields) > 0 || len(m.RemovedFields) > 0 {
			b.WriteString("\nField set:\n\n")
			for _, f := range m.AddedFields {
				fmt.Fprintf(&b, "- added `%s`\n", f)
			}
			for _, f := range m.RemovedFields {
				fmt.Fprintf(&b, "- removed `%s`\n", f)
			}
		}
		if len(m.AddedVersions) > 0 {
			b.WriteString("\n### New versions\n\n")
			writeVersionTable(&b, m.Module, m.AddedVersions)
		}
		if len(m.StatusChanges) > 0 {
			b.WriteString("\n### Status changes\n\n| version | arch | was | now |\n|---|---|---|---|\n")
			for _, c := range m.StatusChanges {
				fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.Version, c.Arch, c.Old, statusCell(c.New, c.Reason))
			}
		}
		if len(m.RemovedVersions) > 0 {
			b.WriteString("\n### Removed builds\n\n| version | arch | was |\n|---|---|---|\n")
			for _, v := range m.RemovedVersions {
				fmt.Fprintf(&b, "| %s | %s | %s |\n", v.Version, v.Arch, v.Status)
			}
		}
		if len(m.ValueChanges) > 0 {
			b.WriteString("\n### Changed offsets\n\n| version | arch | field | old | new |\n|---|---|---|---|---|\n")
			for _, c := range m.ValueChanges {
				fmt.Fprintf(&b, "| %s | %s | `%s` | %s | %s |\n", c.Version, c.Arch, c.Field, offsets.FormatValues(c.Old, c.OldByGo), offsets.FormatValues(c.New, c.NewByGo))
			}
		}
	}
	footer := "\n---\nGenerated by `offsetgen publish`"
	if p.cfg.RunURL != "" {
		footer += " in " + p.cfg.RunURL
	}
	footer += ".\n"
	s := b.String()
	if len(s)+len(footer) > maxBody {
		s = s[:maxBody-len(footer)-80]
		s = s[:strings.LastIndexByte(s, '\n')+1] + "\n*(truncated: run `offsetgen diff` for the full list)*\n"
	}
	return s + footer
}

// writeVersionTable writes one row per version and one column per GOARCH.
func writeVersionTable(b *strings.Builder, module string, vs []offsets.VersionStatus) {
	var arches, versions []string
	cell := map[[2]string]string{}
	for _, v := range vs {
		if !slices.Contains(arches, v.Arch) {
			arches = append(arches, v.Arch)
		}
		if !slices.Contains(versions, v.Version) {
			versions = append(versions, v.Version)
		}
		cell[[2]string{v.Version, v.Arch}] = statusCell(v.Status, v.Reason)
	}
	slices.Sort(arches)
	slices.SortFunc(versions, func(a, b string) int { return offsets.CompareVersions(module, a, b) })
	b.WriteString("| version |")
	for _, a := range arches {
		b.WriteString(" " + a + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(arches)) + "\n")
	for _, v := range versions {
		b.WriteString("| " + v + " |")
		for _, a := range arches {
			c := cell[[2]string{v, a}]
			if c == "" {
				c = "–"
			}
			b.WriteString(" " + c + " |")
		}
		b.WriteString("\n")
	}
}

func statusCell(s offsets.Status, reason string) string {
	if reason == "" {
		return string(s)
	}
	r := strings.Join(strings.Fields(reason), " ")
	if rs := []rune(r); len(rs) > 80 {
		r = string(rs[:80]) + "…"
	}
	return string(s) + ": " + mdCell(r)
}

// mdCell makes text safe inside a markdown table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}
