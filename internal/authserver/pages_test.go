package authserver_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
)

var formActionRE = regexp.MustCompile(`form-action ([^;]*)`)

// formAction returns the form-action sources of a response's CSP.
func formAction(t *testing.T, resp *http.Response) string {
	t.Helper()
	m := formActionRE.FindStringSubmatch(resp.Header.Get("Content-Security-Policy"))
	if m == nil {
		t.Fatalf("no form-action in CSP %q", resp.Header.Get("Content-Security-Policy"))
	}
	return m[1]
}

func origin(raw string) string {
	u, _ := url.Parse(raw)
	return u.Scheme + "://" + u.Host
}

// TestConsentPageFormAction: the consent page's form-action lists exactly
// where an approval or a denial can lead before a page is shown: vmcp
// itself, each provider's authorization endpoint and loginOrigins, and the
// client's redirect URI (an origin, or the scheme of a native app's
// private-use URI). An error page allows no form at all.
func TestConsentPageFormAction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakeidp.Options{}, func(o *authserver.Options) {
		o.Providers[0].LoginOrigins = []string{"https://login.example.com", "https://login.example.com/"}
	})
	web := e.publicClient()
	code, out := e.register(map[string]any{"redirect_uris": []string{"com.example.app:/cb"}, "application_type": "native",
		"grant_types": []string{"authorization_code"}, "token_endpoint_auth_method": "none"})
	if code != http.StatusCreated {
		t.Fatalf("registering a native client: %d %v", code, out)
	}
	native := out["client_id"].(string)
	for _, tc := range []struct {
		name, url, want string
	}{
		{"loopback redirect", e.authorizeURL(web, "verifier-0123456789-0123456789-0123456789-abc", nil),
			"'self' http://127.0.0.1:9999 " + origin(e.idp.URL()) + " https://login.example.com"},
		{"private-use scheme", e.authorizeURL(native, "verifier-0123456789-0123456789-0123456789-abc",
			url.Values{"redirect_uri": {"com.example.app:/cb"}}),
			"'self' com.example.app: " + origin(e.idp.URL()) + " https://login.example.com"},
		{"error page", e.srv.URL + authserver.PathAuthorize + "?client_id=nobody", "'none'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.get(tc.url)
			resp.Body.Close()
			if got := formAction(t, resp); got != tc.want {
				t.Errorf("form-action %q, want %q", got, tc.want)
			}
		})
	}
}

// TestConsentPageFormActionIdPDown: an OIDC provider that cannot be
// discovered when the page is shown is allowed by its issuer's origin (the
// login then fails with an error sent to the client, which is allowed).
func TestConsentPageFormActionIdPDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakeidp.Options{}, nil)
	client := e.publicClient()
	e.idp.Close()
	resp := e.get(e.authorizeURL(client, "verifier-0123456789-0123456789-0123456789-abc", nil))
	resp.Body.Close()
	if got, want := formAction(t, resp), "'self' http://127.0.0.1:9999 "+origin(e.idp.URL()); got != want {
		t.Errorf("form-action %q, want %q", got, want)
	}
}

// TestConsentPageExpires: a consent page submitted more than ten minutes
// after it was shown approves nothing (403, a page saying it expired);
// within ten minutes it works.
func TestConsentPageExpires(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	e := newEnv(t, fakeidp.Options{}, func(o *authserver.Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	client := e.publicClient()
	f := consentForm(t, e.get(e.authorizeURL(client, "verifier-0123456789-0123456789-0123456789-abc", nil)))
	f.Set("decision", "approve")
	advance(10*time.Minute + time.Second)
	resp, err := e.browser.PostForm(e.srv.URL+authserver.PathConsent, f)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "This sign-in page has expired") {
		t.Errorf("late submission: %d\n%s", resp.StatusCode, body)
	}

	f = consentForm(t, e.get(e.authorizeURL(client, "verifier-0123456789-0123456789-0123456789-abc", nil)))
	f.Set("decision", "approve")
	advance(9 * time.Minute)
	resp, err = e.browser.PostForm(e.srv.URL+authserver.PathConsent, f)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("submission after 9 minutes: %d, want a redirect upstream", resp.StatusCode)
	}
}
