package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/offsetdb/offsetdb/gobinary"

	"github.com/offsetdb/offsetdb/tracer/process"
	"github.com/offsetdb/offsetdb/tracer/resolve"
	"github.com/offsetdb/offsetdb/tracer/target"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// inspection is what `tracer inspect --json` prints.
type inspection struct {
	Path        string   `json:"path"`
	GoVersion   string   `json:"go_version"`
	Arch        string   `json:"arch"`
	Stripped    bool     `json:"stripped"`
	DWARF       bool     `json:"dwarf"`
	PIE         bool     `json:"pie"`
	CGO         bool     `json:"cgo"`
	Experiments []string `json:"experiments,omitempty"`
	// ABI is the calling convention the binary's Go functions use:
	// "register", or "stack" (before Go 1.17 on amd64, 1.18 on arm64)
	// with, on amd64, where the goroutine is kept: "stack, g at FS-8".
	ABI              string                `json:"abi"`
	Modules          []string              `json:"modules,omitempty"`
	Instrumentations []inspectedInstrument `json:"instrumentations"`
}

type inspectedInstrument struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	// NotUsed says the binary does not link the instrumented library.
	NotUsed bool             `json:"not_used,omitempty"`
	Reason  string           `json:"reason,omitempty"`
	Probes  []inspectedProbe `json:"probes,omitempty"`
	Fields  []inspectedField `json:"fields"`
}

type inspectedProbe struct {
	Symbol   string `json:"symbol"`
	Versions string `json:"versions,omitempty"` // the probe's version bound
	Status   string `json:"status"`             // attached, skipped, missing
	Reason   string `json:"reason,omitempty"`
}

type inspectedField struct {
	Field      string `json:"field"`
	Status     string `json:"status"` // resolved, absent, unresolved
	Offset     uint64 `json:"offset"`
	Size       uint64 `json:"size"`
	Type       string `json:"type,omitempty"`
	Provenance string `json:"provenance,omitempty"`
	Error      string `json:"error,omitempty"`
}

func runInspect(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	o.register(fs)
	pid := fs.Int("pid", 0, "inspect the executable of this running process")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	var path string
	switch {
	case *pid != 0 && fs.NArg() == 0:
		p, _, err := process.ExePath(*pid)
		if err != nil {
			return err
		}
		path = p
	case *pid == 0 && fs.NArg() == 1:
		path = fs.Arg(0)
	default:
		return fmt.Errorf("%w: give one PATH or --pid N", errUsage)
	}
	if err := o.check(); err != nil {
		return err
	}
	r, err := o.resolver()
	if err != nil {
		return err
	}
	insts := o.instrumentations()
	p, err := target.NewPlan(path, r, insts)
	if err != nil {
		return err
	}
	defer p.Binary.Close()

	b := p.Binary
	out := inspection{
		Path: path, GoVersion: b.GoVersionRaw, Arch: b.Arch, Stripped: b.Stripped, DWARF: b.HasDWARF,
		PIE: b.PIE, CGO: b.CGO, Experiments: b.Experiments, ABI: abiOf(b),
	}
	for _, m := range b.Modules {
		s := m.Path + "@" + m.Version
		if m.Replace != nil {
			s += " => " + m.Replace.Path
			if m.Replace.Version != "" {
				s += "@" + m.Replace.Version
			}
		}
		out.Modules = append(out.Modules, s)
	}
	disabled := map[string]target.Disabled{}
	for _, d := range p.Disabled {
		disabled[d.Name] = d
	}
	for _, inst := range insts {
		ii := inspectedInstrument{Name: inst.Name, Enabled: true}
		if d, ok := disabled[inst.Name]; ok {
			ii.Enabled, ii.Reason = false, d.Reason
		}
		if slices.Contains(p.NotUsed, inst.Name) {
			ii.Enabled, ii.NotUsed = false, true
			ii.Reason = "the binary does not link " + gobinary.SymbolPackage(inst.Probes[0].Symbol)
			out.Instrumentations = append(out.Instrumentations, ii)
			continue
		}
		located, skipped, _ := inst.Locate(p.Binary)
		for _, pr := range inst.Probes {
			ip := inspectedProbe{Symbol: pr.Symbol, Versions: pr.Versions, Status: "attached"}
			if !ii.Enabled {
				ip.Status = "not attached"
			}
			for _, l := range located {
				if l.Probe == pr && l.Assumed != "" {
					ip.Reason = "assumed: " + l.Assumed
				}
			}
			for _, sk := range skipped {
				if sk.Probe == pr {
					ip.Status, ip.Reason = "skipped", skipReason(sk)
				}
			}
			if !slices.ContainsFunc(located, func(l uprobe.Located) bool { return l.Probe == pr }) && ip.Status != "skipped" {
				ip.Status = "missing"
				if _, err := p.Binary.Function(pr.Symbol); err != nil {
					ip.Reason = err.Error()
				}
			}
			ii.Probes = append(ii.Probes, ip)
		}
		for _, f := range inst.Fields {
			rf, ok := p.Fields[f.ID]
			if !ok {
				continue // not resolved at all: the binary is unsupported, said in Reason
			}
			inf := inspectedField{Field: f.ID.String(), Status: rf.Status.String(), Provenance: rf.Provenance}
			if rf.Status == resolve.Resolved {
				inf.Offset, inf.Size, inf.Type = rf.Value.Offset, rf.Value.Size, rf.Value.Type
			}
			if rf.Status == resolve.Unresolved && rf.Err != nil {
				inf.Error = rf.Err.Error()
			}
			if rf.Status == resolve.Absent && !f.Optional && !f.IfResolved {
				inf.Error = "required field does not exist in this version"
			}
			if rf.Status == resolve.Unresolved && f.IfResolved && ii.Enabled {
				inf.Error = "runs without it: " + inf.Error
			}
			ii.Fields = append(ii.Fields, inf)
		}
		out.Instrumentations = append(out.Instrumentations, ii)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	printInspection(stdout, out)
	return nil
}

// skipReason says why a probe was skipped, without repeating the symbol.
func skipReason(sk uprobe.Skipped) string {
	msg := strings.TrimPrefix(sk.Err.Error(), uprobe.ErrProbeSkipped.Error()+": ")
	return strings.TrimPrefix(msg, sk.Probe.Symbol+" ")
}

func printInspection(w io.Writer, in inspection) {
	var traits []string
	for _, t := range []struct {
		on   bool
		name string
	}{{in.Stripped, "stripped"}, {!in.DWARF, "no DWARF"}, {in.PIE, "PIE"}, {in.CGO, "cgo"}, {in.ABI != "register", strings.Replace(in.ABI, "stack", "stack calling convention", 1)}} {
		if t.on {
			traits = append(traits, t.name)
		}
	}
	fmt.Fprintf(w, "binary:  %s\n", in.Path)
	fmt.Fprintf(w, "go:      %s (%s)\n", in.GoVersion, strings.Join(append([]string{in.Arch}, traits...), ", "))
	if len(in.Experiments) > 0 {
		fmt.Fprintf(w, "GOEXPERIMENT: %s\n", strings.Join(in.Experiments, ","))
	}
	if len(in.Modules) > 0 {
		fmt.Fprintf(w, "modules: %s\n", strings.Join(in.Modules, "\n         "))
	}
	for _, ii := range in.Instrumentations {
		state := "enabled"
		switch {
		case ii.NotUsed:
			state = "not used: " + ii.Reason
		case !ii.Enabled:
			state = "DISABLED: " + ii.Reason
		}
		fmt.Fprintf(w, "\n%s: %s\n", ii.Name, state)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, pr := range ii.Probes {
			bound := ""
			if pr.Versions != "" {
				bound = " (" + pr.Versions + ")"
			}
			fmt.Fprintf(tw, "  probe %s%s\t%s\t%s\n", pr.Symbol, bound, pr.Status, pr.Reason)
		}
		for _, f := range ii.Fields {
			switch f.Status {
			case "resolved":
				fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\n", f.Field, f.Offset, f.Size, f.Type, f.Provenance)
			case "absent":
				fmt.Fprintf(tw, "  %s\tabsent\t\t\t%s\n", f.Field, f.Provenance)
			default:
				fmt.Fprintf(tw, "  %s\tMISSING\t\t\t%s\n", f.Field, f.Error)
			}
		}
		tw.Flush()
	}
}

// abiOf names the calling convention of b's Go functions for inspect.
func abiOf(b *gobinary.Binary) string {
	if !uprobe.StackABI(b) {
		return "register"
	}
	if b.Arch != "amd64" {
		return "stack"
	}
	off, err := b.GoTLSOffset()
	if err != nil {
		return "stack, g unknown"
	}
	return fmt.Sprintf("stack, g at FS%+d", off)
}
