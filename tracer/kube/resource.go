package kube

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/offsetdb/offsetdb/tracer/container"
)

// Resource is what the tracer puts on a traced process's resource, besides
// the process attributes and the tracer's own OTEL_* environment (which is
// applied after it and wins).
type Resource struct {
	// ServiceName is service.name: the target's OTEL_SERVICE_NAME, else
	// service.name in its OTEL_RESOURCE_ATTRIBUTES, else the pod's
	// app.kubernetes.io/name or app label, else its workload's name, else
	// the executable's name.
	ServiceName string
	// Attributes are container.id, the k8s.* attributes of its pod, and
	// the attributes of the target's own OTEL_RESOURCE_ATTRIBUTES.
	Attributes []attribute.KeyValue
}

// Resource describes process pid, whose executable is exe. m may be nil
// (no Kubernetes metadata). A pod the cgroup names but the cache does not
// hold yet is waited for, briefly (podWait).
func (m *Metadata) Resource(pid int, exe string) Resource {
	env := targetEnv(pid)
	info, _ := container.ForPID(pid)
	var r Resource
	if info.ID != "" {
		r.Attributes = append(r.Attributes, attribute.String(AttrContainerID, info.ID))
	}
	var pod Pod
	var err error = ErrNoPod
	if m != nil && (info.ID != "" || info.PodUID != "") {
		// Wait only for a pod the kubelet's cgroup names: a container of no
		// pod (a runtime's own, docker run) never appears.
		deadline := time.Now()
		if info.PodUID != "" {
			deadline = deadline.Add(podWait)
		}
		for pod, err = m.Lookup(info); err != nil && time.Now().Before(deadline); pod, err = m.Lookup(info) {
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil && info.PodUID != "" {
			m.log.Warn("process in a container of no known pod: spans carry no pod metadata", "pid", pid, "container.id", info.ID, "pod.uid", info.PodUID)
		}
	}
	if err == nil {
		r.Attributes = append(r.Attributes,
			attribute.String(AttrNamespace, pod.Namespace),
			attribute.String(AttrPodName, pod.Name),
			attribute.String(AttrPodUID, pod.UID))
		if pod.Container != "" {
			r.Attributes = append(r.Attributes, attribute.String(AttrContainer, pod.Container))
		}
		if pod.Node != "" {
			r.Attributes = append(r.Attributes, attribute.String(AttrNode, pod.Node))
		}
		r.Attributes = append(r.Attributes, pod.Owners...)
	}
	own := parseResourceAttributes(env["OTEL_RESOURCE_ATTRIBUTES"])
	r.Attributes = append(r.Attributes, own...)

	switch {
	case strings.TrimSpace(env["OTEL_SERVICE_NAME"]) != "":
		r.ServiceName = strings.TrimSpace(env["OTEL_SERVICE_NAME"])
	case lookup(own, "service.name") != "":
		r.ServiceName = lookup(own, "service.name")
	case err == nil && pod.Labels["app.kubernetes.io/name"] != "":
		r.ServiceName = pod.Labels["app.kubernetes.io/name"]
	case err == nil && pod.Labels["app"] != "":
		r.ServiceName = pod.Labels["app"]
	case err == nil && pod.Workload != "":
		r.ServiceName = pod.Workload
	default:
		r.ServiceName = filepath.Base(exe)
	}
	return r
}

// targetEnv reads the OTEL_ variables of process pid's initial environment
// (/proc/PID/environ: needs the same rights as reading its memory, which
// the tracer has). A process that cannot be read has none.
func targetEnv(pid int) map[string]string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return nil
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok && strings.HasPrefix(k, "OTEL_") {
			env[k] = v
		}
	}
	return env
}

// parseResourceAttributes parses an OTEL_RESOURCE_ATTRIBUTES value:
// comma-separated key=value pairs, values percent-decoded (as the
// specification says); a malformed pair is skipped.
func parseResourceAttributes(s string) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	for _, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			continue
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			continue
		}
		attrs = append(attrs, attribute.String(k, dv))
	}
	return attrs
}

func lookup(attrs []attribute.KeyValue, key string) string {
	for i := len(attrs) - 1; i >= 0; i-- {
		if string(attrs[i].Key) == key {
			return attrs[i].Value.AsString()
		}
	}
	return ""
}
