// Package deploy holds the deployment artifacts of the tracer and their
// tests: the container image (built from ../Containerfile by
// ../scripts/image.sh and run with podman against a process on this host)
// and the Kubernetes manifests under kubernetes/ (validated against the
// Kubernetes OpenAPI schemas with kubeconform, and by a real kube-apiserver
// with kubectl apply --dry-run=server). It has no code of its own.
package deploy
