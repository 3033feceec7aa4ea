package offsets

import (
	"fmt"
	"slices"
)

// Diff is what changed from one database to another, module by module. It
// is what "offsetgen diff" prints and what "offsetgen publish" turns into a
// changelog and checks before publishing. Every list is sorted (GOARCH, then
// version, then field), so equal databases give equal diffs.
type Diff struct {
	Modules []ModuleDiff `json:"modules"`
}

// ModuleDiff is what changed in one module.
type ModuleDiff struct {
	Module string `json:"module"`
	// Added and Removed are set when the whole module is new or gone; its
	// versions are then listed as added or removed too.
	Added   bool `json:"added,omitempty"`
	Removed bool `json:"removed,omitempty"`
	// AddedFields and RemovedFields are changes to the tracked field set.
	AddedFields   []string `json:"added_fields,omitempty"`
	RemovedFields []string `json:"removed_fields,omitempty"`
	// AddedVersions are builds only in the new database (with their status),
	// RemovedVersions builds only in the old one (with their old status).
	AddedVersions   []VersionStatus `json:"added_versions,omitempty"`
	RemovedVersions []VersionStatus `json:"removed_versions,omitempty"`
	// StatusChanges are builds in both whose status differs.
	StatusChanges []StatusChange `json:"status_changes,omitempty"`
	// ValueChanges are fields tracked by both whose value differs in a
	// version that is ok in both: a published offset that changed.
	ValueChanges []ValueChange `json:"value_changes,omitempty"`
}

// VersionStatus is one build's outcome.
type VersionStatus struct {
	Arch    string `json:"arch"`
	Version string `json:"version"`
	Status  Status `json:"status"`
	Reason  string `json:"reason,omitempty"`
}

// StatusChange is a build whose status differs between the databases;
// Reason is the new record's.
type StatusChange struct {
	Arch    string `json:"arch"`
	Version string `json:"version"`
	Old     Status `json:"old"`
	New     Status `json:"new"`
	Reason  string `json:"reason,omitempty"`
}

// ValueChange is a field whose value differs in a version ok in both
// databases. A nil value means the field is absent in that database.
type ValueChange struct {
	Arch    string `json:"arch"`
	Version string `json:"version"`
	Field   string `json:"field"`
	Old     *Value `json:"old"`
	New     *Value `json:"new"`
	// OldByGo and NewByGo hold the values per Go release when the value
	// depends on it (Old or New is then nil); see Range.Go.
	OldByGo []GoValue `json:"old_by_go,omitempty"`
	NewByGo []GoValue `json:"new_by_go,omitempty"`
}

// Empty reports whether nothing changed in the module.
func (m *ModuleDiff) Empty() bool {
	return !m.Added && !m.Removed && len(m.AddedFields) == 0 && len(m.RemovedFields) == 0 &&
		len(m.AddedVersions) == 0 && len(m.RemovedVersions) == 0 && len(m.StatusChanges) == 0 && len(m.ValueChanges) == 0
}

// Empty reports whether the two databases hold the same information.
// Differences in the wording of a failure reason or in a toolchain name
// alone do not count.
func (d *Diff) Empty() bool {
	for i := range d.Modules {
		if !d.Modules[i].Empty() {
			return false
		}
	}
	return true
}

// HasValueChanges reports whether any published offset changed: a field
// value that differs in a version ok in both databases.
func (d *Diff) HasValueChanges() bool {
	for _, m := range d.Modules {
		if len(m.ValueChanges) > 0 {
			return true
		}
	}
	return false
}

// DiffDBs compares every module of two databases. Modules with no change
// are left out.
func DiffDBs(oldDB, newDB *DB) (*Diff, error) {
	modules := slices.Concat(oldDB.Modules(), newDB.Modules())
	slices.Sort(modules)
	modules = slices.Compact(modules)
	d := &Diff{Modules: []ModuleDiff{}}
	for _, m := range modules {
		var so, sn *Shard
		var err error
		if slices.Contains(oldDB.Modules(), m) {
			if so, err = oldDB.Shard(m); err != nil {
				return nil, fmt.Errorf("old database: %w", err)
			}
		}
		if slices.Contains(newDB.Modules(), m) {
			if sn, err = newDB.Shard(m); err != nil {
				return nil, fmt.Errorf("new database: %w", err)
			}
		}
		md, err := DiffShards(so, sn)
		if err != nil {
			return nil, err
		}
		if !md.Empty() {
			d.Modules = append(d.Modules, md)
		}
	}
	return d, nil
}

// DiffShards compares two shards of one module; either may be nil (the
// module is new or gone).
func DiffShards(oldShard, newShard *Shard) (ModuleDiff, error) {
	if oldShard == nil && newShard == nil {
		return ModuleDiff{}, fmt.Errorf("diff: no shards")
	}
	empty := func(module string) *Table { return NewTable(module, nil) }
	var md ModuleDiff
	var to, tn *Table
	var err error
	if oldShard != nil {
		md.Module = oldShard.Module
		if to, err = oldShard.Expand(); err != nil {
			return md, fmt.Errorf("old shard: %w", err)
		}
	}
	if newShard != nil {
		if oldShard != nil && newShard.Module != oldShard.Module {
			return md, fmt.Errorf("diff: module %s against module %s", oldShard.Module, newShard.Module)
		}
		md.Module = newShard.Module
		if tn, err = newShard.Expand(); err != nil {
			return md, fmt.Errorf("new shard: %w", err)
		}
	}
	if to == nil {
		md.Added, to = true, empty(md.Module)
	}
	if tn == nil {
		md.Removed, tn = true, empty(md.Module)
	}

	oldFields, newFields := fieldNames(to.Fields), fieldNames(tn.Fields)
	if !md.Added && !md.Removed {
		for _, f := range newFields {
			if !slices.Contains(oldFields, f) {
				md.AddedFields = append(md.AddedFields, f)
			}
		}
		for _, f := range oldFields {
			if !slices.Contains(newFields, f) {
				md.RemovedFields = append(md.RemovedFields, f)
			}
		}
	}
	var common []FieldID
	for _, id := range tn.Fields {
		if slices.Contains(oldFields, id.String()) {
			common = append(common, id)
		}
	}

	arches := slices.Concat(sortedKeys(to.Builds), sortedKeys(tn.Builds))
	slices.Sort(arches)
	arches = slices.Compact(arches)
	for _, arch := range arches {
		versions := slices.Concat(to.Versions(arch), tn.Versions(arch))
		slices.SortFunc(versions, func(a, b string) int { return CompareVersions(md.Module, a, b) })
		versions = slices.Compact(versions)
		for _, v := range versions {
			bo, inOld := to.Builds[arch][v]
			bn, inNew := tn.Builds[arch][v]
			switch {
			case !inOld:
				md.AddedVersions = append(md.AddedVersions, VersionStatus{Arch: arch, Version: v, Status: bn.Status, Reason: bn.Reason})
			case !inNew:
				md.RemovedVersions = append(md.RemovedVersions, VersionStatus{Arch: arch, Version: v, Status: bo.Status, Reason: bo.Reason})
			case bo.Status != bn.Status:
				md.StatusChanges = append(md.StatusChanges, StatusChange{Arch: arch, Version: v, Old: bo.Status, New: bn.Status, Reason: bn.Reason})
			case bo.Status == StatusOK:
				for _, id := range common {
					vo, okO := bo.Values[id]
					vn, okN := bn.Values[id]
					if okO == okN && vo == vn && slices.Equal(bo.GoValues[id], bn.GoValues[id]) {
						continue
					}
					c := ValueChange{Arch: arch, Version: v, Field: id.String(), OldByGo: bo.GoValues[id], NewByGo: bn.GoValues[id]}
					if okO {
						c.Old = &vo
					}
					if okN {
						c.New = &vn
					}
					md.ValueChanges = append(md.ValueChanges, c)
				}
			}
		}
	}
	return md, nil
}

func fieldNames(ids []FieldID) []string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = id.String()
	}
	return names
}
