package httpconv

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRedactQueryReplacesSensitiveValuesOnly(t *testing.T) {
	tests := []struct{ name, query, want string }{
		{"nothing sensitive is kept as is", "q=OpenTelemetry&color=blue", "q=OpenTelemetry&color=blue"},
		{"empty query", "", ""},
		{"sig is redacted, the key kept", "q=OpenTelemetry&sig=abc", "q=OpenTelemetry&sig=REDACTED"},
		{"every listed key", "X-Amz-Signature=a&X-Amz-Credential=b&X-Amz-Security-Token=c&sig=d&X-Goog-Signature=e",
			"X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&X-Amz-Security-Token=REDACTED&sig=REDACTED&X-Goog-Signature=REDACTED"},
		{"keys are case-sensitive", "SIG=a&Sig=b&x-amz-signature=c&X-AMZ-CREDENTIAL=d", "SIG=a&Sig=b&x-amz-signature=c&X-AMZ-CREDENTIAL=d"},
		{"sig is not sign or signature", "sign=a&signature=b&xsig=c&sig_=d", "sign=a&signature=b&xsig=c&sig_=d"},
		{"keys of older conventions are not listed", "AWSAccessKeyId=k&Signature=s", "AWSAccessKeyId=k&Signature=s"},
		{"repeated keys are all redacted", "sig=a&x=1&sig=b&sig=c", "sig=REDACTED&x=1&sig=REDACTED&sig=REDACTED"},
		{"an empty value stays empty", "sig=&x=1&sig", "sig=&x=1&sig"},
		{"a key without = is kept", "sig&X-Amz-Signature&q=1", "sig&X-Amz-Signature&q=1"},
		{"the value runs to the next & and may hold =", "sig=a=b%3D&q=1", "sig=REDACTED&q=1"},
		{"percent-encoded keys are decoded", "si%67=a&X%2DAmz%2DSignature=b&sig%20=c", "si%67=REDACTED&X%2DAmz%2DSignature=REDACTED&sig%20=c"},
		{"an invalid escape in a key does not match", "sig%zz=a&q=%zz", "sig%zz=a&q=%zz"},
		{"empty parameters are kept byte for byte", "&&sig=a&&", "&&sig=REDACTED&&"},
		{"a semicolon does not separate", "x=1;sig=a&q=2", "x=1;sig=a&q=2"},
		{"a value cut short is still redacted", "q=1&X-Amz-Signature=0123456789ab", "q=1&X-Amz-Signature=REDACTED"},
		{"a cut key is not a listed key", "q=1&X-Amz-Sig", "q=1&X-Amz-Sig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, redactQuery(tt.query))
		})
	}
}

func TestRedactQueryKeepsAQueryWithoutSensitiveKeysWithoutCopying(t *testing.T) {
	q := strings.Repeat("a=b&", 256)
	allocs := testing.AllocsPerRun(100, func() { _ = redactQuery(q) })
	assert.Zero(t, allocs)
}
