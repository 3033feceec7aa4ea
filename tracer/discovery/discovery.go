// Package discovery selects the processes a tracer watching a node traces:
// include and exclude rules on the executable's path, the ports a process
// listens on, and its Kubernetes namespace, pod name, pod labels and
// owners, read from a YAML file in the shape OpenTelemetry eBPF
// Instrumentation (OBI) and Beyla users already write:
//
//	discovery:
//	  services:                      # a process matching any rule is traced
//	    - exe_path: "*/checkout*"     # glob on the path (on the base name if it has no '/')
//	      open_ports: "8080-8089,9090"
//	      k8s_namespace: "shop*"
//	      k8s_pod_labels: {app.kubernetes.io/name: "checkout*"}
//	      k8s_deployment_name: "*"
//	  exclude_services:              # same shape; a match here is never traced
//	    - k8s_namespace: kube-system
//
// Every field set in a rule must match (globs, as path.Match); a rule with
// k8s_* fields matches only processes of a known pod. The tracer's own
// process and container are never selected.
//
// Selection follows changes: Filter re-evaluates the processes it let
// through and those it held back every interval, so a pod relabelled into a
// rule is traced within it, and one relabelled out is detached.
package discovery

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/offsetdb/offsetdb/tracer/container"
	"github.com/offsetdb/offsetdb/tracer/kube"
	"github.com/offsetdb/offsetdb/tracer/process"
)

// Config is the discovery file.
type Config struct {
	Discovery struct {
		Services        []Rule `json:"services"`
		ExcludeServices []Rule `json:"exclude_services"`
	} `json:"discovery"`
}

// Rule is one include or exclude rule; empty fields match anything.
type Rule struct {
	// Name labels the rule in logs.
	Name string `json:"name,omitempty"`
	// ExePath is a glob on the executable's path, or on its base name when
	// the glob has no '/'.
	ExePath string `json:"exe_path,omitempty"`
	// OpenPorts lists TCP ports and ranges ("80,8080-8089"): the process
	// must listen on one of them.
	OpenPorts string `json:"open_ports,omitempty"`

	K8sNamespace       string            `json:"k8s_namespace,omitempty"`
	K8sPodName         string            `json:"k8s_pod_name,omitempty"`
	K8sPodLabels       map[string]string `json:"k8s_pod_labels,omitempty"`
	K8sContainerName   string            `json:"k8s_container_name,omitempty"`
	K8sDeploymentName  string            `json:"k8s_deployment_name,omitempty"`
	K8sReplicaSetName  string            `json:"k8s_replicaset_name,omitempty"`
	K8sStatefulSetName string            `json:"k8s_statefulset_name,omitempty"`
	K8sDaemonSetName   string            `json:"k8s_daemonset_name,omitempty"`
	K8sJobName         string            `json:"k8s_job_name,omitempty"`
	K8sCronJobName     string            `json:"k8s_cronjob_name,omitempty"`

	ports [][2]int
}

// ErrConfig reports a discovery file that cannot be used.
var ErrConfig = errors.New("discovery configuration")

// Load reads and checks a discovery file. Unknown keys are errors, so that
// a misspelt selector does not silently select everything.
func Load(file string) (*Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return Parse(b)
}

// Parse parses and checks a discovery file's contents.
func Parse(b []byte) (*Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		// The YAML is decoded as JSON, which the library's words say;
		// the user wrote YAML.
		msg := strings.NewReplacer("error unmarshaling JSON: while decoding JSON: json: ", "",
			"error converting YAML to JSON: ", "").Replace(err.Error())
		return nil, fmt.Errorf("%w: %s", ErrConfig, msg)
	}
	if len(c.Discovery.Services) == 0 {
		return nil, fmt.Errorf("%w: discovery.services lists no rule: nothing would be traced", ErrConfig)
	}
	for _, rules := range []struct {
		key   string
		rules []Rule
	}{{"services", c.Discovery.Services}, {"exclude_services", c.Discovery.ExcludeServices}} {
		for i := range rules.rules {
			if err := rules.rules[i].check(); err != nil {
				return nil, fmt.Errorf("%w: discovery.%s[%d]: %w", ErrConfig, rules.key, i, err)
			}
		}
	}
	return &c, nil
}

func (r *Rule) check() error {
	globs := map[string]string{"exe_path": r.ExePath, "k8s_namespace": r.K8sNamespace, "k8s_pod_name": r.K8sPodName,
		"k8s_container_name": r.K8sContainerName, "k8s_deployment_name": r.K8sDeploymentName, "k8s_replicaset_name": r.K8sReplicaSetName,
		"k8s_statefulset_name": r.K8sStatefulSetName, "k8s_daemonset_name": r.K8sDaemonSetName, "k8s_job_name": r.K8sJobName,
		"k8s_cronjob_name": r.K8sCronJobName}
	for k, v := range r.K8sPodLabels {
		globs["k8s_pod_labels."+k] = v
	}
	empty := r.OpenPorts == ""
	for key, g := range globs {
		if g == "" {
			continue
		}
		empty = false
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("%s %q: %w", key, g, err)
		}
	}
	if empty {
		return errors.New("a rule with no selector would match every process: give at least one")
	}
	for _, part := range strings.Split(r.OpenPorts, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
			return fmt.Errorf("open_ports %q: want ports or ranges of 1-65535 like \"80,8080-8089\"", r.OpenPorts)
		}
		r.ports = append(r.ports, [2]int{a, b})
	}
	return nil
}

// Process is what rules are matched against.
type Process struct {
	PID int
	Exe string
	Pod *kube.Pod

	ports     []int // TCP ports it listens on, read on first use
	portsRead bool
}

// Ports returns the TCP ports the process listens on. They are read only
// when a rule gets to its open_ports, after every cheaper selector matched:
// reading them costs ~0.1 ms per process (its fds and TCP tables).
func (p *Process) Ports() []int {
	if !p.portsRead {
		p.ports, _ = ListeningPorts(p.PID)
		p.portsRead = true
	}
	return p.ports
}

// matches reports whether every selector of r matches p.
func (r *Rule) matches(p *Process) bool {
	if r.ExePath != "" && !matchExe(r.ExePath, p.Exe) {
		return false
	}
	pairs := [][2]string{
		{r.K8sNamespace, kube.AttrNamespace}, {r.K8sPodName, kube.AttrPodName}, {r.K8sContainerName, kube.AttrContainer},
		{r.K8sDeploymentName, kube.AttrDeployment}, {r.K8sReplicaSetName, kube.AttrReplicaSet}, {r.K8sStatefulSetName, kube.AttrStatefulSet},
		{r.K8sDaemonSetName, kube.AttrDaemonSet}, {r.K8sJobName, kube.AttrJob}, {r.K8sCronJobName, kube.AttrCronJob},
	}
	if !r.needsPod() {
		return r.portsMatch(p)
	}
	if p.Pod == nil {
		return false
	}
	values := map[string]string{kube.AttrNamespace: p.Pod.Namespace, kube.AttrPodName: p.Pod.Name, kube.AttrContainer: p.Pod.Container}
	for _, kv := range p.Pod.Owners {
		values[string(kv.Key)] = kv.Value.AsString()
	}
	for _, pr := range pairs {
		if pr[0] == "" {
			continue
		}
		v, ok := values[pr[1]]
		if !ok {
			return false
		}
		if m, _ := path.Match(pr[0], v); !m {
			return false
		}
	}
	for k, g := range r.K8sPodLabels {
		v, ok := p.Pod.Labels[k]
		if !ok {
			return false
		}
		if m, _ := path.Match(g, v); !m {
			return false
		}
	}
	return r.portsMatch(p)
}

// portsMatch checks open_ports, the last and dearest selector.
func (r *Rule) portsMatch(p *Process) bool {
	return len(r.ports) == 0 || r.listensOn(p.Ports())
}

// matchExe matches a glob without '/' against the executable's base name,
// and one with '/' against the path or any tail of it that starts after a
// '/': "*/checkout*" matches /usr/local/bin/checkout-api.
func matchExe(glob, exe string) bool {
	if !strings.Contains(glob, "/") {
		ok, _ := path.Match(glob, path.Base(exe))
		return ok
	}
	for tail := exe; ; {
		if ok, _ := path.Match(glob, tail); ok {
			return true
		}
		i := strings.Index(tail[min(1, len(tail)):], "/")
		if i < 0 {
			return false
		}
		tail = tail[i+1:]
	}
}

// needsPod reports whether the rule selects on Kubernetes metadata.
func (r *Rule) needsPod() bool {
	return len(r.K8sPodLabels) > 0 || r.K8sNamespace != "" || r.K8sPodName != "" || r.K8sContainerName != "" ||
		r.K8sDeploymentName != "" || r.K8sReplicaSetName != "" || r.K8sStatefulSetName != "" || r.K8sDaemonSetName != "" ||
		r.K8sJobName != "" || r.K8sCronJobName != ""
}

func (r *Rule) listensOn(ports []int) bool {
	for _, p := range ports {
		for _, rg := range r.ports {
			if p >= rg[0] && p <= rg[1] {
				return true
			}
		}
	}
	return false
}

// Selector decides, from a Config and the pod caches, which processes to trace.
type Selector struct {
	config *Config
	meta   *kube.Metadata // nil: no k8s_* rule can match
	self   container.Info // the tracer's own container, excluded
	log    *slog.Logger
}

// NewSelector returns a Selector; meta may be nil (no Kubernetes metadata).
func NewSelector(c *Config, meta *kube.Metadata, log *slog.Logger) *Selector {
	s := &Selector{config: c, meta: meta, log: log}
	s.self, _ = container.ForPID(os.Getpid())
	return s
}

// Describe gathers what the rules match on for process pid.
func (s *Selector) Describe(pid int, exe string) *Process {
	p := &Process{PID: pid, Exe: exe}
	if s.meta != nil {
		if info, err := container.ForPID(pid); err == nil && (info.ID != "" || info.PodUID != "") {
			if pod, err := s.meta.Lookup(info); err == nil {
				p.Pod = &pod
			}
		}
	}
	return p
}

// Selects reports whether process pid (executable exe) is to be traced, and
// which rule decided.
func (s *Selector) Selects(pid int, exe string) (bool, string) {
	if pid == os.Getpid() {
		return false, "the tracer itself"
	}
	if s.self.ID != "" {
		if info, err := container.ForPID(pid); err == nil && info.ID == s.self.ID {
			return false, "the tracer's own container"
		}
	}
	p := s.Describe(pid, exe)
	for i, r := range s.config.Discovery.ExcludeServices {
		if r.matches(p) {
			return false, ruleName("exclude_services", i, r)
		}
	}
	for i, r := range s.config.Discovery.Services {
		if r.matches(p) {
			return true, ruleName("services", i, r)
		}
	}
	return false, "no rule"
}

func ruleName(key string, i int, r Rule) string {
	if r.Name != "" {
		return r.Name
	}
	return fmt.Sprintf("discovery.%s[%d]", key, i)
}

// Filter passes on the events of processes the selector selects, resumes
// the others (a process held at its exec is never left stopped) and keeps
// them as candidates. Every interval it re-evaluates candidates and the
// processes it let through: a candidate now selected is sent as a new event
// (not held), a traced process no longer selected as an Exited event, which
// detaches it. With a nil selector, events pass unchanged.
func Filter(ctx context.Context, events <-chan process.Event, s *Selector, interval time.Duration) <-chan process.Event {
	if s == nil {
		return events
	}
	out := make(chan process.Event)
	go func() {
		defer close(out)
		passed := map[int]string{}     // pid → exe, let through
		candidates := map[int]string{} // pid → exe, held back
		tick := time.NewTicker(interval)
		defer tick.Stop()
		send := func(ev process.Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-events:
				if !ok {
					return
				}
				if ev.Exited {
					delete(candidates, ev.PID)
					if _, was := passed[ev.PID]; was {
						delete(passed, ev.PID)
						if !send(ev) {
							return
						}
					}
					continue
				}
				ok, why := s.Selects(ev.PID, ev.Exe)
				if !ok {
					s.log.Debug("not selected", "pid", ev.PID, "exe", ev.Exe, "by", why)
					if err := ev.Resume(); err != nil {
						s.log.Error("resume a process held at its exec", "pid", ev.PID, "err", err)
					}
					candidates[ev.PID] = ev.Exe
					continue
				}
				s.log.Info("selected", "pid", ev.PID, "exe", ev.Exe, "by", why)
				passed[ev.PID] = ev.Exe
				if !send(ev) {
					return
				}
			case <-tick.C:
				for pid, exe := range candidates {
					if !alive(pid) {
						delete(candidates, pid)
						continue
					}
					if ok, why := s.Selects(pid, exe); ok {
						s.log.Info("now selected", "pid", pid, "exe", exe, "by", why)
						delete(candidates, pid)
						passed[pid] = exe
						if !send(process.Event{PID: pid, Exe: exe}) {
							return
						}
					}
				}
				for pid, exe := range passed {
					if !alive(pid) {
						continue // its Exited event comes from the watch
					}
					if ok, why := s.Selects(pid, exe); !ok {
						s.log.Info("no longer selected: detaching", "pid", pid, "exe", exe, "by", why)
						delete(passed, pid)
						candidates[pid] = exe
						if !send(process.Event{PID: pid, Exe: exe, Exited: true}) {
							return
						}
					}
				}
			}
		}
	}()
	return out
}

func alive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// Flags are the tracer's command-line settings for discovery.
type Flags struct {
	file string
}

// RegisterFlags adds --discovery to fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.file, "discovery", os.Getenv("OFFSETDB_DISCOVERY"), "YAML file of include and exclude rules selecting the processes to trace (executable path, listening ports, Kubernetes namespace, pod name and labels, owners; see docs/deployment.md); implies --exe '*' unless --exe narrows it (env OFFSETDB_DISCOVERY)")
	return f
}

// Enabled reports whether a discovery file was given.
func (f *Flags) Enabled() bool { return f.file != "" }

// Selector loads the file and returns its Selector; nil without a file.
func (f *Flags) Selector(meta *kube.Metadata, log *slog.Logger) (*Selector, error) {
	if f.file == "" {
		return nil, nil
	}
	c, err := Load(f.file)
	if err != nil {
		return nil, err
	}
	if meta == nil {
		for _, r := range append(append([]Rule{}, c.Discovery.Services...), c.Discovery.ExcludeServices...) {
			if r.needsPod() {
				log.Warn("discovery rule on Kubernetes metadata without Kubernetes metadata (see --kube-metadata): it matches no process", "rule", r.Name)
				break
			}
		}
	}
	return NewSelector(c, meta, log), nil
}
