package refuse

import (
	"strings"
	"testing"
)

// TestMinimalAnswersHideTheReason: under deny_detail = "minimal" every
// refusal gets the same body and alert; under "full" the reason shows, on
// one line.
func TestMinimalAnswersHideTheReason(t *testing.T) {
	for _, tc := range []struct {
		name      string
		full      bool
		reason    string
		noName    bool
		wantBody  string
		wantAlert byte
	}{
		{"minimal, named", false, "\"a.example\" is not allowed", false, MinimalBody, AlertAccessDenied},
		{"minimal, no name", false, "no server name", true, MinimalBody, AlertAccessDenied},
		{"full, named", true, "\"a.example\" is not allowed", false,
			"egressfw denied this request: \"a.example\" is not allowed\n", AlertAccessDenied},
		{"full, no name", true, "no server name", true, "egressfw denied this request: no server name\n", AlertUnrecognizedName},
		{"full, a line break in the reason", true, "a\r\nb", false, "egressfw denied this request: a  b\n", AlertAccessDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Body(tc.full, tc.reason); got != tc.wantBody {
				t.Errorf("Body = %q, want %q", got, tc.wantBody)
			}
			if got := Alert(tc.full, tc.noName); got != tc.wantAlert {
				t.Errorf("Alert = %d, want %d", got, tc.wantAlert)
			}
			if resp := Forbidden(tc.wantBody); !strings.HasPrefix(resp, "HTTP/1.1 403 Forbidden\r\n") || !strings.HasSuffix(resp, "\r\n\r\n"+tc.wantBody) {
				t.Errorf("Forbidden = %q", resp)
			}
		})
	}
}
