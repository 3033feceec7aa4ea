package instrumentation_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/offsetdb/offsetdb/tracer/instrumentation"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// TestEveryDeclarationMatchesItsFieldSetAndBPFObject fails when any
// registered instrumentation disagrees with its BPF object (programs,
// constants, maps) or with the field sets of the modules its fields belong
// to.
func TestEveryDeclarationMatchesItsFieldSetAndBPFObject(t *testing.T) {
	all := instrumentation.All()
	names := map[string]bool{}
	for _, inst := range all {
		assert.False(t, names[inst.Name], "instrumentation %s registered twice", inst.Name)
		names[inst.Name] = true
		t.Run(inst.Name, func(t *testing.T) {
			uprobetest.CheckDeclaration(t, inst)
		})
	}
}
