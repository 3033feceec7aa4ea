package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// requireDeploy reports whether the deployment tests must run rather than
// skip when a tool (podman, buildah, etcd, kube-apiserver, kubectl) or root
// is missing: CI sets OFFSETDB_REQUIRE_DEPLOY=1.
func requireDeploy() bool { return os.Getenv("OFFSETDB_REQUIRE_DEPLOY") == "1" }

// skip skips t loudly, or fails it under OFFSETDB_REQUIRE_DEPLOY=1.
func skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if requireDeploy() {
		t.Fatalf("%s (OFFSETDB_REQUIRE_DEPLOY=1: this test must run)", msg)
	}
	t.Skipf("SKIPPED: %s", msg)
}

// needTools skips t unless every tool is on PATH.
func needTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			skip(t, "%s not found (apt-get install podman buildah etcd-server; .ci/run installs them)", tool)
		}
	}
}

// needRoot skips t unless it runs as root.
func needRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		skip(t, "%s needs root", why)
	}
}
