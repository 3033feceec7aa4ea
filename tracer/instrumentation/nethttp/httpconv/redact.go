package httpconv

import (
	"net/url"
	"strings"
)

// sensitiveQueryKeys are the query parameters whose values the HTTP
// semantic conventions (v1.43.0, url.query and url.full) say SHOULD be
// replaced by "REDACTED" by default: AWS SigV4 presigned URLs, Azure SAS
// tokens and Google Cloud Storage signed URLs. Keys match case-sensitively,
// as the conventions say.
var sensitiveQueryKeys = [...]string{
	"X-Amz-Signature",
	"X-Amz-Credential",
	"X-Amz-Security-Token",
	"sig",
	"X-Goog-Signature",
}

// redactedValue replaces the value of a sensitive query parameter.
const redactedValue = "REDACTED"

// redactQuery returns the raw query q with the value of every parameter
// named in sensitiveQueryKeys replaced by "REDACTED", and every other byte
// as it was: the key and its "=" are kept ("color=blue&sig=REDACTED").
//
// Parameters are separated by "&", and a key ends at its first "=", as
// net/url parses them. A key is compared after percent-decoding (so
// "si%67=x", which a server reads as sig, is redacted too); a parameter
// without "=" or with an empty value has nothing to redact and is kept.
// q may be the start of a longer query (cut at 1 KiB): the value of a
// sensitive key cut short is still replaced.
func redactQuery(q string) string {
	var b strings.Builder
	copied := 0 // q[:copied] is in b
	for start := 0; start < len(q); {
		end := strings.IndexByte(q[start:], '&')
		if end < 0 {
			end = len(q)
		} else {
			end += start
		}
		pair := q[start:end]
		if eq := strings.IndexByte(pair, '='); eq >= 0 && eq+1 < len(pair) && sensitiveQueryKey(pair[:eq]) {
			if copied == 0 {
				b.Grow(len(q))
			}
			b.WriteString(q[copied : start+eq+1])
			b.WriteString(redactedValue)
			copied = end
		}
		start = end + 1
	}
	if copied == 0 {
		return q
	}
	b.WriteString(q[copied:])
	return b.String()
}

// sensitiveQueryKey reports whether the raw (percent-encoded) query key is
// one of sensitiveQueryKeys.
func sensitiveQueryKey(raw string) bool {
	key := raw
	if strings.ContainsAny(raw, "%+") {
		k, err := url.QueryUnescape(raw)
		if err != nil {
			return false // net/url rejects such a key too
		}
		key = k
	}
	for _, s := range sensitiveQueryKeys {
		if key == s {
			return true
		}
	}
	return false
}
