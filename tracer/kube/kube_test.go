package kube_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/offsetdb/offsetdb/tracer/container"
	"github.com/offsetdb/offsetdb/tracer/container/cgrouptest"
	"github.com/offsetdb/offsetdb/tracer/kube"
	"github.com/offsetdb/offsetdb/tracer/kube/kubetest"
)

const ns = "shop"

// objects creates the namespace, a Deployment's ReplicaSet, and the owners
// the test's pods point at. Nothing reconciles them: the pods are created
// by the test, with the owner references a controller would write.
type objects struct {
	t  *testing.T
	cs kubernetes.Interface
}

func (o objects) ctx() context.Context { return context.Background() }

// pod creates a pod on node with one container per name, the given owner
// and labels, and reports containerIDs (name → id) in its status, as the
// kubelet would once the containers run.
func (o objects) pod(name, node string, owner *metav1.OwnerReference, labels map[string]string, containers []string, containerIDs map[string]string) *corev1.Pod {
	o.t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}, Spec: corev1.PodSpec{NodeName: node}}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "example.com/" + c + ":1"})
	}
	p, err := o.cs.CoreV1().Pods(ns).Create(o.ctx(), p, metav1.CreateOptions{})
	if err != nil {
		o.t.Fatalf("create pod %s: %v", name, err)
	}
	if len(containerIDs) == 0 {
		return p
	}
	for _, c := range containers {
		if id, ok := containerIDs[c]; ok {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
				Name: c, ContainerID: "containerd://" + id, Image: "example.com/" + c + ":1", ImageID: "sha256:" + id, Ready: true,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
			})
		}
	}
	p.Status.Phase = corev1.PodRunning
	p, err = o.cs.CoreV1().Pods(ns).UpdateStatus(o.ctx(), p, metav1.UpdateOptions{})
	if err != nil {
		o.t.Fatalf("update pod %s status: %v", name, err)
	}
	return p
}

func controller(kind, name string, uid types.UID) *metav1.OwnerReference {
	yes := true
	api := "apps/v1"
	if kind == "Job" || kind == "CronJob" {
		api = "batch/v1"
	}
	return &metav1.OwnerReference{APIVersion: api, Kind: kind, Name: name, UID: uid, Controller: &yes, BlockOwnerDeletion: &yes}
}

// inPod starts a process in a cgroup named as the kubelet and containerd
// name one for the pod's container, with env added to its environment.
func inPod(t *testing.T, podUID types.UID, containerID string, env ...string) int {
	t.Helper()
	leaf, cleanup := cgrouptest.KubeCgroup(t, string(podUID), containerID)
	cmd := exec.Command("sh", "-c", "echo $$ > "+filepath.Join(leaf, "cgroup.procs")+" && exec sleep 300")
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); cleanup() })
	for range 200 {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid)); strings.Contains(string(b), containerID) {
			// The kernel names the new executable before it lays out the
			// new environment: wait for both.
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
			environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
			if filepath.Base(exe) == "sleep" && len(environ) > 0 {
				return cmd.Process.Pid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d never ran sleep in cgroup %s", cmd.Process.Pid, leaf)
	return 0
}

func id(n int) string { return fmt.Sprintf("%064x", 0xc0ffee00+n) }

func attrs(r kube.Resource) map[string]string {
	m := map[string]string{"service.name": r.ServiceName}
	for _, a := range r.Attributes {
		m[string(a.Key)] = a.Value.String()
	}
	return m
}

func check(t *testing.T, what string, got kube.Resource, want map[string]string) {
	t.Helper()
	g := attrs(got)
	for k, v := range want {
		if v == "" {
			if _, ok := g[k]; ok {
				t.Errorf("%s: %s = %q, want it absent", what, k, g[k])
			}
		} else if g[k] != v {
			t.Errorf("%s: %s = %q, want %q (all: %v)", what, k, g[k], v, g)
		}
	}
}

// TestResourceFromAPIServer runs processes in cgroups carrying pod UIDs and
// container ids, with pods, ReplicaSets and Jobs in a real API server, and
// checks the attributes Resource gives each.
func TestResourceFromAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	o := objects{t: t, cs: c.Client}
	ctx := o.ctx()
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A Deployment's ReplicaSet (the Deployment itself need not exist: only
	// the ReplicaSet's owner reference is read).
	rs, err := c.Client.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-5f7b9c", Namespace: ns,
			OwnerReferences: []metav1.OwnerReference{*controller("Deployment", "checkout", "0a0a0a0a-0000-4000-8000-000000000001")}},
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"pod-template-hash": "5f7b9c"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"pod-template-hash": "5f7b9c"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	job, err := c.Client.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "report-29010000", Namespace: ns,
			OwnerReferences: []metav1.OwnerReference{*controller("CronJob", "report", "0a0a0a0a-0000-4000-8000-000000000002")}},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "report", Image: "example.com/report:1"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	deployPod := o.pod("checkout-5f7b9c-x2k4q", "node-a", controller("ReplicaSet", rs.Name, rs.UID),
		map[string]string{"app.kubernetes.io/name": "checkout", "pod-template-hash": "5f7b9c"},
		[]string{"app", "envoy"}, map[string]string{"app": id(1), "envoy": id(2)})
	// The kubelet has not reported the container's id yet: found by pod UID.
	jobPod := o.pod("report-29010000-abcde", "node-a", controller("Job", job.Name, job.UID), nil, []string{"report"}, nil)
	stsPod := o.pod("db-0", "node-a", controller("StatefulSet", "db", "0a0a0a0a-0000-4000-8000-000000000003"),
		map[string]string{"app": "postgres"}, []string{"postgres"}, map[string]string{"postgres": id(3)})
	dsPod := o.pod("agent-q8z7x", "node-a", controller("DaemonSet", "agent", "0a0a0a0a-0000-4000-8000-000000000004"),
		nil, []string{"agent"}, map[string]string{"agent": id(4)})
	otherNode := o.pod("elsewhere", "node-b", nil, map[string]string{"app": "elsewhere"}, []string{"main"}, map[string]string{"main": id(5)})

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m, err := kube.Start(mctx, kube.Config{Kubeconfig: c.Kubeconfig, NodeName: "node-a", Log: log})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("deployment", func(t *testing.T) {
		pid := inPod(t, deployPod.UID, id(2))
		check(t, "envoy container of a Deployment's pod", m.Resource(pid, "/usr/bin/sleep"), map[string]string{
			"container.id": id(2), "k8s.namespace.name": ns, "k8s.pod.name": deployPod.Name, "k8s.pod.uid": string(deployPod.UID),
			"k8s.container.name": "envoy", "k8s.node.name": "node-a", "k8s.replicaset.name": rs.Name, "k8s.deployment.name": "checkout",
			"service.name": "checkout", "k8s.job.name": "", "k8s.statefulset.name": "",
		})
	})
	t.Run("target's own OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES", func(t *testing.T) {
		pid := inPod(t, deployPod.UID, id(1), "OTEL_SERVICE_NAME=checkout-api", "OTEL_RESOURCE_ATTRIBUTES=service.namespace=shop,deployment.environment.name=prod%20eu")
		check(t, "OTEL_SERVICE_NAME", m.Resource(pid, "/usr/bin/sleep"), map[string]string{
			"service.name": "checkout-api", "service.namespace": "shop", "deployment.environment.name": "prod eu", "k8s.container.name": "app",
		})
		pid = inPod(t, deployPod.UID, id(1), "OTEL_RESOURCE_ATTRIBUTES=service.name=from-attributes")
		check(t, "OTEL_RESOURCE_ATTRIBUTES", m.Resource(pid, "/usr/bin/sleep"), map[string]string{"service.name": "from-attributes"})
	})
	t.Run("cronjob, container id not reported yet", func(t *testing.T) {
		pid := inPod(t, jobPod.UID, id(6))
		check(t, "a CronJob's Job's pod", m.Resource(pid, "/usr/bin/sleep"), map[string]string{
			"container.id": id(6), "k8s.pod.name": jobPod.Name, "k8s.container.name": "report",
			"k8s.job.name": job.Name, "k8s.cronjob.name": "report", "service.name": "report", "k8s.replicaset.name": "",
		})
	})
	t.Run("statefulset", func(t *testing.T) {
		pid := inPod(t, stsPod.UID, id(3))
		check(t, "a StatefulSet's pod", m.Resource(pid, "/usr/bin/sleep"), map[string]string{
			"k8s.statefulset.name": "db", "k8s.container.name": "postgres", "service.name": "postgres",
		})
	})
	t.Run("daemonset", func(t *testing.T) {
		pid := inPod(t, dsPod.UID, id(4))
		check(t, "a DaemonSet's pod", m.Resource(pid, "/usr/bin/sleep"), map[string]string{
			"k8s.daemonset.name": "agent", "service.name": "agent",
		})
	})
	t.Run("pod created after start", func(t *testing.T) {
		late := o.pod("late", "node-a", nil, nil, []string{"main"}, map[string]string{"main": id(7)})
		pid := inPod(t, late.UID, id(7))
		check(t, "a pod the informer learned of by watch", m.Resource(pid, "/usr/bin/sleep"), map[string]string{
			"k8s.pod.name": "late", "k8s.container.name": "main", "service.name": "sleep",
		})
	})
	t.Run("another node's pod is not cached", func(t *testing.T) {
		if _, err := m.Lookup(containerInfo(otherNode.UID, id(5))); err == nil {
			t.Errorf("a pod of node-b was found by a tracer watching node-a")
		}
	})
	t.Run("not in a pod", func(t *testing.T) {
		check(t, "this test process", m.Resource(os.Getpid(), "/usr/local/bin/kube.test"), map[string]string{
			"service.name": "kube.test", "k8s.pod.name": "", "container.id": "",
		})
		var none *kube.Metadata
		check(t, "nil Metadata", none.Resource(os.Getpid(), "/usr/local/bin/kube.test"), map[string]string{"service.name": "kube.test"})
	})
}

func containerInfo(uid types.UID, id string) container.Info {
	return container.Info{ID: id, PodUID: string(uid)}
}
