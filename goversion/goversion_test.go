package goversion

import (
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseAcceptsEverySpelling(t *testing.T) {
	tests := []struct {
		in   string
		want Version
		str  string
	}{
		{"go1.22.5", Version{1, 22, 5, ""}, "go1.22.5"},
		{"1.22.5", Version{1, 22, 5, ""}, "go1.22.5"},
		{"go1.12", Version{1, 12, 0, ""}, "go1.12"},
		{"go1.12.0", Version{1, 12, 0, ""}, "go1.12"},
		{"go1.22", Version{1, 22, 0, ""}, "go1.22.0"},
		{"go1.22rc1", Version{1, 22, 0, "rc1"}, "go1.22rc1"},
		{"go1.9beta2", Version{1, 9, 0, "beta2"}, "go1.9beta2"},
		{"go1.21.0 X:boringcrypto", Version{1, 21, 0, ""}, "go1.21.0"},
		{"go1.22.5-custom", Version{1, 22, 5, ""}, "go1.22.5"},
		{"go1.26.8-X:boringcrypto", Version{1, 26, 8, ""}, "go1.26.8"},
		{"  go1.17.13\n", Version{1, 17, 13, ""}, "go1.17.13"},
		// The BoringCrypto fork (before Go 1.19): the release it is based on.
		{"go1.16.4b7", Version{1, 16, 4, ""}, "go1.16.4"},
		{"go1.16b7", Version{1, 16, 0, ""}, "go1.16"},
		{"go1.9.2b4", Version{1, 9, 2, ""}, "go1.9.2"},
		{"go1.18.10b7", Version{1, 18, 10, ""}, "go1.18.10"},
		{"go1.16.15b7 X:none", Version{1, 16, 15, ""}, "go1.16.15"},
		{"1.17.13b7", Version{1, 17, 13, ""}, "go1.17.13"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.str, got.String())
		})
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "go", "go1", "go2.0.0", "go1.x", "go1.22.5.1", "go1.22rc", "go1.22rcx", "go1.022", "go1.22.5rc1", "go-1.2",
		// Not the BoringCrypto fork's spelling.
		"go1.16.4b", "go1.16.4b07", "go1.16.4bx", "go1.16.b7", "go1.16.4b7b7", "go1.16.4beta"} {
		_, err := Parse(in)
		assert.Error(t, err, in)
	}
}

func TestParseDevelIsTyped(t *testing.T) {
	for _, in := range []string{"devel +abc123 Tue Jan 1", "devel go1.23-abc123 Tue"} {
		_, err := Parse(in)
		assert.ErrorIs(t, err, ErrDevel, in)
	}
}

func TestExperiments(t *testing.T) {
	assert.Equal(t, []string{"boringcrypto"}, Experiments("go1.21.0 X:boringcrypto"))
	assert.Equal(t, []string{"loopvar", "rangefunc"}, Experiments("go1.22.0 X:loopvar,rangefunc"))
	assert.Equal(t, []string{"boringcrypto"}, Experiments("go1.26.8-X:boringcrypto"))
	assert.Nil(t, Experiments("go1.22.0"))
	assert.Nil(t, Experiments("go1.22.5-custom"))
}

func TestCompareOrdersReleasesAndPreReleases(t *testing.T) {
	want := []string{"go1.12", "go1.12.17", "go1.21beta1", "go1.21rc2", "go1.21rc10", "go1.21.0", "go1.21.9", "go1.21.10", "go1.22.0"}
	vs := make([]Version, len(want))
	for i, s := range want {
		vs[len(want)-1-i] = MustParse(s)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].Less(vs[j]) })
	var got []string
	for _, v := range vs {
		got = append(got, v.String())
	}
	assert.Equal(t, want, got)
	assert.Equal(t, 0, MustParse("go1.12").Compare(MustParse("1.12.0")))
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"go1.22.5", "go1.21rc1", "devel +x", "1.2.3 X:a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			return
		}
		// A parsed version must survive its own String form.
		w, err := Parse(v.String())
		require.NoError(t, err)
		assert.Equal(t, v, w)
	})
}
