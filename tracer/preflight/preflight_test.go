package preflight

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckPassesAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		err := Check()
		require.Error(t, err, "an unprivileged process must be refused")
		assert.ErrorIs(t, err, ErrPrivileges)
		assert.Contains(t, err.Error(), "CAP_BPF")
		return
	}
	require.NoError(t, Check())
}

func TestEffectiveCapabilitiesMatchesUID(t *testing.T) {
	eff, err := effectiveCapabilities()
	require.NoError(t, err)
	if os.Geteuid() == 0 {
		assert.NotZero(t, eff&(1<<capSysAdmin), "root has CAP_SYS_ADMIN")
	}
}
