package uprobe

// NoKernelTypes is what programs of register-ABI targets resolve their
// CO-RE relocations against on kernels without BTF, for tests.
var NoKernelTypes = noKernelTypes
