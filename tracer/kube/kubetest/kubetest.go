// Package kubetest starts a real Kubernetes API server for tests: Debian's
// etcd and a kube-apiserver built from the Go module proxy
// (scripts/kube-apiserver.sh, cached by version), both on loopback in a
// temporary directory, with no controller-manager, scheduler or kubelet.
// Objects the test creates stay as written: nothing reconciles them.
package kubetest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Require reports whether a missing tool must fail the test instead of
// skipping it: CI sets OFFSETDB_REQUIRE_DEPLOY=1.
func Require() bool { return os.Getenv("OFFSETDB_REQUIRE_DEPLOY") == "1" }

// startTimeout bounds the wait for etcd and the API server to be ready.
const startTimeout = 2 * time.Minute

// Cluster is a running API server.
type Cluster struct {
	// Kubeconfig is a kubeconfig file for a cluster administrator
	// (system:masters), for kubectl and client-go.
	Kubeconfig string
	// Config is the same credentials for client-go.
	Config *rest.Config
	// Client is a clientset on Config.
	Client kubernetes.Interface
}

func skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Require() {
		t.Fatalf("%s (OFFSETDB_REQUIRE_DEPLOY=1: this test must run)", msg)
	}
	t.Skipf("SKIPPED: %s", msg)
}

// Start starts etcd and kube-apiserver for the duration of the test. It
// skips the test (fails it under Require) when etcd is not installed; the
// first run builds kube-apiserver (minutes).
func Start(t testing.TB) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver: not in -short")
	}
	if _, err := exec.LookPath("etcd"); err != nil {
		skip(t, "etcd not found (apt-get install etcd-server)")
	}
	apiserver := APIServerBinary(t)
	dir := t.TempDir()

	etcdClient, etcdPeer := freePort(t), freePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	etcd := exec.Command("etcd", "--name", "test", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "test="+peerURL, "--log-level", "warn")
	background(t, etcd, filepath.Join(dir, "etcd.log"))
	waitHTTP(t, etcdURL+"/health", nil, "", etcd, filepath.Join(dir, "etcd.log"))

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	saKey := filepath.Join(dir, "sa.key")
	writeFile(t, saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	token := randomHex(t, 16)
	writeFile(t, filepath.Join(dir, "tokens.csv"), []byte(token+",admin,admin,system:masters\n"))
	port := freePort(t)
	server := "https://127.0.0.1:" + strconv.Itoa(port)
	api := exec.Command(apiserver,
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(port),
		"--cert-dir", filepath.Join(dir, "certs"),
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saKey, "--service-account-signing-key-file", saKey,
		"--service-cluster-ip-range", "10.96.0.0/24",
		// No controller-manager: nothing creates service account tokens or
		// reconciles the kubernetes Service's endpoints.
		"--disable-admission-plugins", "ServiceAccount",
		"--endpoint-reconciler-type", "none",
		// As kubeadm and every distribution set it: DaemonSets of node agents run privileged.
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		"--v", "0",
	)
	background(t, api, filepath.Join(dir, "kube-apiserver.log"))
	waitHTTP(t, server+"/readyz", &tls.Config{InsecureSkipVerify: true}, token, api, filepath.Join(dir, "kube-apiserver.log"))

	kubeconfig := filepath.Join(dir, "kubeconfig")
	writeFile(t, kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: admin, namespace: default}
current-context: test
`, server, token)))
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &Cluster{Kubeconfig: kubeconfig, Config: cfg, Client: cs}
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// APIServerBinary returns the cached kube-apiserver, building it with
// scripts/kube-apiserver.sh on the first run.
func APIServerBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("OFFSETDB_KUBE_APISERVER"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		script := filepath.Join(filepath.Dir(file), "..", "..", "..", "scripts", "kube-apiserver.sh")
		start := time.Now()
		var stderr bytes.Buffer
		cmd := exec.Command(script)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			buildErr = fmt.Errorf("%s: %v\n%s", script, err, tail(stderr.String(), 4000))
			return
		}
		buildPath = strings.TrimSpace(string(out))
		if d := time.Since(start); d > 10*time.Second {
			t.Logf("built kube-apiserver in %s", d.Round(time.Second))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// background starts cmd with its output in logPath, and kills it when the
// test ends.
func background(t testing.TB, cmd *exec.Cmd, logPath string) {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		f.Close()
	})
}

// waitHTTP polls url until it answers 200, failing with the process's log
// when it exits or startTimeout passes.
func waitHTTP(t testing.TB, url string, tlsConfig *tls.Config, token string, cmd *exec.Cmd, logPath string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	deadline := time.Now().Add(startTimeout)
	for {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if cmd.ProcessState != nil || time.Now().After(deadline) || processExited(cmd) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s not ready at %s (last error %v):\n%s", filepath.Base(cmd.Path), url, err, tail(string(b), 4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// processExited reports whether cmd's process is gone (without reaping it).
func processExited(cmd *exec.Cmd) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat")
	if err != nil {
		return true
	}
	// "pid (comm) S ...": a zombie has state Z.
	s := string(b)
	i := strings.LastIndex(s, ")")
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
