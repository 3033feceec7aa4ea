package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/offsetdb/offsetdb/tracer/discovery"
	"github.com/offsetdb/offsetdb/tracer/kube/kubetest"
)

const (
	// kubernetesVersion is the release whose OpenAPI schemas the manifests
	// are validated against (and the kube-apiserver kubetest builds).
	kubernetesVersion = "v1.37.2"
	// kubeconformVersion is built from the Go module proxy.
	kubeconformVersion = "v0.8.0"
)

// kustomizations are the layouts under kubernetes/ users apply with kubectl apply -k.
var kustomizations = []string{"base", "overlays/privileged", "sidecar"}

// cacheDir is where built tools and generated schemas are kept between runs.
func cacheDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("OFFSETDB_TEST_CACHE")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(home, ".cache", "offsetdb-test")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// render runs kubectl kustomize on one layout.
func render(t *testing.T, layout string) []byte {
	t.Helper()
	out, err := exec.Command("kubectl", "kustomize", filepath.Join("kubernetes", layout)).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("kubectl kustomize %s: %v\n%s", layout, err, stderr)
	}
	return out
}

// TestManifestsOffline validates every rendered manifest against the
// Kubernetes OpenAPI schemas with kubeconform (strict: unknown fields fail).
func TestManifestsOffline(t *testing.T) {
	needTools(t, "kubectl")
	kubeconform := kubeconformBinary(t)
	schemas := schemaDir(t)
	for _, layout := range kustomizations {
		t.Run(layout, func(t *testing.T) {
			cmd := exec.Command(kubeconform, "-strict", "-summary", "-output", "text",
				"-schema-location", filepath.Join(schemas, "{{ .Group }}-{{ .ResourceAPIVersion }}-{{ .ResourceKind }}.json"))
			cmd.Stdin = bytes.NewReader(render(t, layout))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("kubeconform: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "Invalid: 0, Errors: 0, Skipped: 0") {
				t.Fatalf("kubeconform: %s", out)
			}
			t.Logf("kubeconform %s: %s", layout, strings.TrimSpace(string(out)))
		})
	}
	t.Run("a wrong field fails", func(t *testing.T) {
		// The schemas must catch what they are for: a misspelt field.
		bad := bytes.Replace(render(t, "base"), []byte("hostPID: true"), []byte("hostPid: true"), 1)
		cmd := exec.Command(kubeconform, "-strict",
			"-schema-location", filepath.Join(schemas, "{{ .Group }}-{{ .ResourceAPIVersion }}-{{ .ResourceKind }}.json"))
		cmd.Stdin = bytes.NewReader(bad)
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "hostPid") {
			t.Fatalf("kubeconform accepted hostPid (err %v):\n%s", err, out)
		}
	})
}

// TestManifestsServerDryRun sends every manifest to a real kube-apiserver
// with kubectl apply --dry-run=server (admission and validation of the
// server itself), then applies the RBAC for real and checks what the
// tracer's service account may do.
func TestManifestsServerDryRun(t *testing.T) {
	needTools(t, "kubectl")
	c := kubetest.Start(t)
	kubectl := func(stdin []byte, args ...string) (string, error) {
		cmd := exec.Command("kubectl", append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// Namespaced objects can be dry-run only in namespaces that exist.
	for _, ns := range []string{"offsetdb", "shop"} {
		if out, err := kubectl(nil, "create", "namespace", ns, "--save-config"); err != nil {
			t.Fatalf("create namespace %s: %v\n%s", ns, err, out)
		}
	}
	for _, layout := range kustomizations {
		t.Run(layout, func(t *testing.T) {
			out, err := kubectl(render(t, layout), "apply", "--dry-run=server", "-f", "-")
			if err != nil {
				t.Fatalf("kubectl apply --dry-run=server: %v\n%s", err, out)
			}
			if !strings.Contains(out, "(server dry run)") {
				t.Fatalf("not a server dry run:\n%s", out)
			}
			t.Logf("%s", strings.TrimSpace(out))
		})
	}
	t.Run("rbac", func(t *testing.T) {
		if out, err := kubectl(render(t, "base"), "apply", "-f", "-"); err != nil {
			t.Fatalf("kubectl apply: %v\n%s", err, out)
		}
		sa := "system:serviceaccount:offsetdb:offsetdb-tracer"
		for _, tc := range []struct {
			verb, resource string
			want           string
		}{
			{"list", "pods", "yes"}, {"watch", "pods", "yes"}, {"list", "replicasets.apps", "yes"},
			{"watch", "jobs.batch", "yes"}, {"create", "pods", "no"}, {"list", "secrets", "no"},
			{"delete", "replicasets.apps", "no"},
		} {
			out, _ := kubectl(nil, "auth", "can-i", tc.verb, tc.resource, "--all-namespaces", "--as", sa)
			if got := strings.TrimSpace(out); got != tc.want {
				t.Errorf("%s may %s %s: %q, want %q", sa, tc.verb, tc.resource, got, tc.want)
			}
		}
	})
}

var (
	kubeconformOnce sync.Once
	kubeconformPath string
	kubeconformErr  error
)

// kubeconformBinary builds kubeconform from the module proxy, once per
// version (cached).
func kubeconformBinary(t *testing.T) string {
	t.Helper()
	kubeconformOnce.Do(func() {
		dir := filepath.Join(cacheDir(t), "kubeconform-"+kubeconformVersion)
		kubeconformPath = filepath.Join(dir, "kubeconform")
		if _, err := os.Stat(kubeconformPath); err == nil {
			return
		}
		cmd := exec.Command("go", "install", "github.com/yannh/kubeconform/cmd/kubeconform@"+kubeconformVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			kubeconformErr = fmt.Errorf("go install kubeconform: %v\n%s", err, out)
		}
	})
	if kubeconformErr != nil {
		t.Fatal(kubeconformErr)
	}
	return kubeconformPath
}

// schemaDir returns JSON schemas, one file per kind, generated from the
// k8s.io/kubernetes module's api/openapi-spec/swagger.json (cached per
// version).
func schemaDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(cacheDir(t), "kubeconform-schemas-"+kubernetesVersion)
	if _, err := os.Stat(filepath.Join(dir, "_definitions.json")); err == nil {
		return dir
	}
	out, err := exec.Command("go", "mod", "download", "-json", "k8s.io/kubernetes@"+kubernetesVersion).Output()
	if err != nil {
		t.Fatalf("go mod download k8s.io/kubernetes@%s: %v", kubernetesVersion, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download: %v %s", err, out)
	}
	swagger, err := os.ReadFile(filepath.Join(mod.Dir, "api", "openapi-spec", "swagger.json"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	n, err := writeSchemas(swagger, tmp)
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("generated %d schemas from k8s.io/kubernetes@%s swagger.json into %s", n, kubernetesVersion, dir)
	return dir
}

// TestDiscoveryConfig checks that the DaemonSet's discovery rules are what
// the tracer accepts (it exits at start on a bad file).
func TestDiscoveryConfig(t *testing.T) {
	c, err := discovery.Load(filepath.Join("kubernetes", "base", "discovery.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Discovery.Services) == 0 {
		t.Fatal("no include rule")
	}
}

// TestContextPropagationInManifests checks where the manifests write trace
// context into outgoing requests: the privileged overlay does, naming with
// --cgroup-root a read-only hostPath mount of the node's /sys/fs/cgroup
// (what TestImage's "writing trace context" run does with podman); the
// base, whose non-root image lacks CAP_NET_ADMIN, says it does not.
func TestContextPropagationInManifests(t *testing.T) {
	needTools(t, "kubectl")
	daemonSet := func(t *testing.T, layout string) appsv1.DaemonSet {
		for _, doc := range strings.Split(string(render(t, layout)), "\n---\n") {
			var ds appsv1.DaemonSet
			if err := yaml.Unmarshal([]byte(doc), &ds); err != nil {
				t.Fatalf("%s: %v", layout, err)
			}
			if ds.Kind == "DaemonSet" {
				return ds
			}
		}
		t.Fatalf("%s: no DaemonSet", layout)
		return appsv1.DaemonSet{}
	}
	t.Run("overlays/privileged", func(t *testing.T) {
		ds := daemonSet(t, "overlays/privileged")
		c := ds.Spec.Template.Spec.Containers[0]
		if sc := c.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged {
			t.Errorf("tracer container not privileged: %+v", sc)
		}
		var root string
		for _, a := range c.Args {
			if a == "--context-propagation=false" {
				t.Errorf("args %q turn the writer off", c.Args)
			}
			if v, ok := strings.CutPrefix(a, "--cgroup-root="); ok {
				root = v
			}
		}
		if root == "" {
			t.Fatalf("args %q name no --cgroup-root: in a container the writer would attach to its own cgroup namespace", c.Args)
		}
		var volume string
		for _, m := range c.VolumeMounts {
			if m.MountPath == root {
				volume = m.Name
				if !m.ReadOnly {
					t.Errorf("%s is mounted read-write; the writer only attaches to it", root)
				}
			}
		}
		found := false
		for _, v := range ds.Spec.Template.Spec.Volumes {
			if v.Name == volume && v.HostPath != nil && v.HostPath.Path == "/sys/fs/cgroup" {
				found = true
			}
		}
		if !found {
			t.Errorf("--cgroup-root=%s is not a mount of the node's /sys/fs/cgroup (volume %q)", root, volume)
		}
	})
	t.Run("base", func(t *testing.T) {
		c := daemonSet(t, "base").Spec.Template.Spec.Containers[0]
		if !slices.Contains(c.Args, "--context-propagation=false") {
			t.Errorf("base args %q: the non-root image has no CAP_NET_ADMIN, so the writer must be off explicitly (else a warning at every start)", c.Args)
		}
	})
}
