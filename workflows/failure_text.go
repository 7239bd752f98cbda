package workflows

import (
	"regexp"
	"strings"
)

// sdkTail matches what the AWS SDK appends to an API error: the operation, the HTTP
// status, the request id and the API's error again ("operation error EC2: CopyImage, https
// response error StatusCode: 403, RequestID: ..., api error UnauthorizedOperation: ...").
// ferry's activities already say the operation, the code and the message before it.
var sdkTail = regexp.MustCompile(`: operation error [^;]*`)

// readable makes a failure line read as one sentence for the Temporal UI, `ferry get` and
// the audit trail: without the SDK's transport detail and without a clause said twice
// (an aggregate of failures with the same cause). Only text changes, never commands.
func readable(line string) string {
	line = sdkTail.ReplaceAllString(line, "")
	var out []string
	seen := map[string]bool{}
	for _, clause := range strings.Split(line, "; ") {
		if c := strings.TrimSpace(clause); c != "" && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return strings.Join(out, "; ")
}
