package authserver_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/store/memory"
	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeclock"
	"github.com/vmcp-dev/vmcp/internal/testsupport/fakeidp"
	"github.com/vmcp-dev/vmcp/internal/testsupport/logbuf"
)

// The attacks of issue 10 on the authorization server, each through its
// real HTTP endpoints. docs/identity.md#threat-model lists them.

const verifier = "verifier-0123456789-0123456789-0123456789-abc"

// authorize runs an authorization in browser up to vmcp's redirect (to the
// IdP, or to the client with an error), approving the consent page with
// provider if it is shown, and returns where it redirects (nil if it does
// not) and whether the consent page was shown.
func (e *env) authorize(browser *http.Client, clientID, provider string) (*url.URL, bool) {
	e.t.Helper()
	resp, err := browser.Get(e.authorizeURL(clientID, verifier, nil))
	if err != nil {
		e.t.Fatal(err)
	}
	consent := resp.StatusCode == http.StatusOK
	if consent {
		f := consentForm(e.t, resp)
		f.Set("decision", "approve")
		f.Set("provider", provider)
		if resp, err = browser.PostForm(e.srv.URL+authserver.PathConsent, f); err != nil {
			e.t.Fatal(err)
		}
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	return loc, consent
}

// startLogin runs an authorization in browser up to the redirect to the
// IdP (where a browser goes next) and returns that URL and whether the
// consent page was shown.
func (e *env) startLogin(browser *http.Client, clientID, provider string) (*url.URL, bool) {
	e.t.Helper()
	loc, consent := e.authorize(browser, clientID, provider)
	if loc == nil || strings.HasPrefix(loc.String(), e.srv.URL) || strings.HasPrefix(loc.String(), redirectURI) {
		e.t.Fatalf("starting a login: redirect to %v, want one to the IdP", loc)
	}
	return loc, consent
}

// finishLogin opens an IdP URL in browser (the fake IdP logs the user in at
// once) and returns vmcp's answer at the callback, not followed further.
func (e *env) finishLogin(browser *http.Client, idpURL *url.URL) *http.Response {
	e.t.Helper()
	resp, err := browser.Get(idpURL.String())
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	cb, err := resp.Location()
	if err != nil || !strings.HasPrefix(cb.String(), e.srv.URL) {
		e.t.Fatalf("the IdP answered %d to %v, want a redirect to vmcp's callback", resp.StatusCode, cb)
	}
	if resp, err = browser.Get(cb.String()); err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// wantRefused checks that a callback was refused with an error page and
// issued nothing: no redirect, no new authorization code or grant.
func (e *env) wantRefused(resp *http.Response, before memory.Stats) {
	e.t.Helper()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "started in another browser") {
		e.t.Errorf("callback in the victim's browser: %d, Location %q, %s\n%s; want a 403 page saying the login was started in another browser",
			resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Content-Type"), body)
	}
	if after := e.store.Stats(); after.Tokens != before.Tokens || after.Grants != before.Grants {
		e.t.Errorf("the refused callback stored tokens or grants: %+v before, %+v after", before, after)
	}
}

// wantCode checks that a callback completed with a code for the client.
func (e *env) wantCode(resp *http.Response) {
	e.t.Helper()
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || !strings.HasPrefix(loc.String(), redirectURI) || loc.Query().Get("code") == "" {
		e.t.Errorf("callback in the browser that started the login: %d to %v, want a code for the client", resp.StatusCode, loc)
	}
}

// TestLoginLinkInAnotherBrowser is the consent bypass: an attacker
// registers a client, approves vmcp's consent page for it in their own
// browser, stops at the redirect to the IdP and sends that URL to a victim
// who is logged in at the IdP. The victim's browser reaches vmcp's callback
// and must get a refusal page, with no code for the attacker's client:
// whatever cookies the victim's browser holds, whether the attacker saw the
// consent page or had it remembered, and with several providers.
func TestLoginLinkInAnotherBrowser(t *testing.T) {
	t.Parallel()
	t.Run("one provider", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakeidp.Options{Subject: "victim"}, nil)
		client := e.publicClient()
		attacker := newBrowser()

		link, consent := e.startLogin(attacker, client, "idp")
		if !consent {
			t.Fatal("no consent page on the first authorization")
		}
		e.wantRefused(e.finishLogin(newBrowser(), link), e.store.Stats())
		// The refused login is used up: the attacker cannot finish it either.
		resp := e.finishLogin(attacker, link)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("finishing a refused login: %d, want 400 (unknown login)", resp.StatusCode)
		}

		// Consent remembered in the attacker's browser: no page this time.
		link, consent = e.startLogin(attacker, client, "idp")
		if consent {
			t.Fatal("consent page shown although this browser approved the client")
		}
		e.wantRefused(e.finishLogin(newBrowser(), link), e.store.Stats())

		// A victim whose browser holds a login cookie of its own.
		victim := newBrowser()
		e.wantCode(e.finishLogin(victim, first(e.startLogin(victim, e.publicClient(), "idp"))))
		link, _ = e.startLogin(attacker, client, "idp")
		e.wantRefused(e.finishLogin(victim, link), e.store.Stats())

		// The browser that approved a login completes it.
		link, _ = e.startLogin(attacker, client, "idp")
		e.wantCode(e.finishLogin(attacker, link))
	})
	t.Run("several providers", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakeidp.Options{Subject: "victim"}, func(o *authserver.Options) {
			gh := fakeidp.Start(t, fakeidp.Options{Mode: fakeidp.GitHub, Subject: "42"})
			o.Providers = append(o.Providers, authserver.ProviderConfig{Name: "github", Type: authserver.TypeOAuth2,
				AuthorizationURL: gh.AuthorizationURL(), TokenURL: gh.TokenURL(), UserInfoURL: gh.UserInfoURL(),
				Issuer: "https://github.com", ClientID: "vmcp", ClientSecret: "secret", RedirectURI: o.Issuer + authserver.PathCallback,
				Claims: authserver.ClaimMapping{Subject: "id"}})
		})
		client := e.publicClient()
		attacker := newBrowser()
		for _, provider := range []string{"idp", "github"} {
			link, _ := e.startLogin(attacker, client, provider)
			e.wantRefused(e.finishLogin(newBrowser(), link), e.store.Stats())
			link, _ = e.startLogin(attacker, client, provider)
			e.wantCode(e.finishLogin(attacker, link))
		}
	})
}

func first(u *url.URL, _ bool) *url.URL { return u }

// TestLoginsInTwoTabs: one browser may run several logins at once (two
// applications, two tabs); each completes, in any order.
func TestLoginsInTwoTabs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakeidp.Options{}, nil)
	b := newBrowser()
	one, _ := e.startLogin(b, e.publicClient(), "idp")
	two, _ := e.startLogin(b, e.publicClient(), "idp")
	e.wantCode(e.finishLogin(b, two))
	e.wantCode(e.finishLogin(b, one))
}

// TestAbuseAuthorizeRequests: strangers with a consent cookie for their
// own clients send 1,000 oversized authorization requests (7 KB of
// parameters each, most from one client). Pending logins stay within the
// caps, each small (no raw query kept); refusals are OAuth errors that say
// why; requests over the parameter limit are refused before anything is
// parsed or kept.
func TestAbuseAuthorizeRequests(t *testing.T) {
	t.Parallel()
	const total, perClient = 60, 15
	e := newEnv(t, fakeidp.Options{}, func(o *authserver.Options) {
		o.Limits = authserver.Limits{PendingLogins: total, PendingLoginsPerClient: perClient}
	})
	attacker := newBrowser()
	var clients []string
	for range 5 {
		c := e.publicClient()
		clients = append(clients, c)
		e.startLogin(attacker, c, "idp") // approves consent; the browser remembers it
	}
	junk := strings.Repeat("x", 7000)
	refusals := map[string]int{}
	for i := range 1000 {
		c := clients[0]
		if i >= 500 {
			c = clients[1+i%4]
		}
		resp, err := attacker.Get(e.authorizeURL(c, verifier, url.Values{"junk": {junk}, "state": {fmt.Sprint("state-", i, "-", junk[:500])}}))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := resp.Location()
		if resp.StatusCode != http.StatusFound || err != nil {
			t.Fatalf("request %d: %d, want a redirect", i, resp.StatusCode)
		}
		if strings.HasPrefix(loc.String(), redirectURI) {
			q := loc.Query()
			if q.Get("error") != "temporarily_unavailable" {
				t.Fatalf("request %d refused with %v, want temporarily_unavailable", i, q)
			}
			refusals[q.Get("error_description")]++
		}
	}
	st := e.store.Stats()
	t.Logf("after 1,000 requests: %d pending logins, %d bytes; refusals %v", st.Pending, st.PendingBytes, refusals)
	if st.Pending > total {
		t.Errorf("%d pending logins stored, cap %d", st.Pending, total)
	}
	if st.Pending > 0 && st.PendingBytes/st.Pending > 1500 {
		t.Errorf("pending logins average %d bytes: the raw query is kept", st.PendingBytes/st.Pending)
	}
	var perClientSaid, totalSaid bool
	for d := range refusals {
		perClientSaid = perClientSaid || strings.Contains(d, "This application has 15 logins in progress")
		totalSaid = totalSaid || strings.Contains(d, "Too many logins are in progress")
	}
	if !perClientSaid || !totalSaid {
		t.Errorf("refusals %v: want both the per-client and the total cap explained", refusals)
	}

	huge := strings.Repeat("y", 512<<10)
	for range 20 {
		resp, err := attacker.Get(e.authorizeURL(clients[1], verifier, url.Values{"junk": {huge}}))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestURITooLong || !bytes.Contains(body, []byte("too large")) {
			t.Fatalf("a 512 KiB authorization request: %d %s, want 414 with an error page", resp.StatusCode, body)
		}
	}
	if again := e.store.Stats(); again.Pending != st.Pending || again.PendingBytes != st.PendingBytes {
		t.Errorf("oversized requests changed the store: %+v, then %+v", st, again)
	}
}

// TestPendingLoginsPerClientCap: one client's flood of unfinished logins
// hits that client's cap only: another client logs in as usual.
func TestPendingLoginsPerClientCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakeidp.Options{}, func(o *authserver.Options) { o.Limits.PendingLoginsPerClient = 3 })
	flooder := e.publicClient()
	b := newBrowser()
	for range 3 {
		e.startLogin(b, flooder, "idp")
	}
	loc, _ := e.authorize(e.browser, flooder, "idp")
	if loc == nil || loc.Query().Get("error") != "temporarily_unavailable" || !strings.Contains(loc.Query().Get("error_description"), "logins in progress") {
		t.Errorf("a fourth login of the flooding client: redirect to %v, want temporarily_unavailable naming the cap", loc)
	}
	other := e.publicClient()
	if tr := e.exchange(other, e.login(other, verifier).Query().Get("code"), verifier); tr.status != http.StatusOK {
		t.Errorf("another client's login: %d %v", tr.status, tr.raw)
	}
}

// withClock gives the server and its store one settable clock.
func withClock(c *fakeclock.Clock) func(*authserver.Options) {
	return func(o *authserver.Options) {
		o.Now = c.Now
		o.Store = memory.New(c.Now)
	}
}

// TestPendingLoginTimeout: a login not finished within the configured
// timeout is gone.
func TestPendingLoginTimeout(t *testing.T) {
	t.Parallel()
	c := fakeclock.New(time.Now())
	e := newEnv(t, fakeidp.Options{}, func(o *authserver.Options) {
		withClock(c)(o)
		o.Limits.PendingLoginTimeout = 2 * time.Minute
	})
	b := newBrowser()
	link, _ := e.startLogin(b, e.publicClient(), "idp")
	c.Add(3 * time.Minute)
	resp := e.finishLogin(b, link)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a login finished after its timeout: %d, want 400 (unknown login)", resp.StatusCode)
	}
}

// register posts a registration as if from addr, through the server's
// handler (the per-address rate limit keys on it).
func (e *env) registerFrom(addr string, body []byte) (int, map[string]any) {
	r := httptest.NewRequest(http.MethodPost, authserver.PathRegister, bytes.NewReader(body))
	r.RemoteAddr = addr
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	e.mux.ServeHTTP(w, r)
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

// TestAbuseRegistrations: 1,000 registrations with near-limit metadata
// from 100 addresses (the per-address rate limit allows them all) leave no
// more clients than the cap, each no larger than the metadata limit, and
// the client in use survives: new registrations replace the never-used
// ones first. Registrations over the metadata limit are refused.
func TestAbuseRegistrations(t *testing.T) {
	t.Parallel()
	const max = 100
	e := newEnv(t, fakeidp.Options{}, func(o *authserver.Options) { o.Limits.Clients = max })
	inUse := e.publicClient()
	first := e.exchange(inUse, e.login(inUse, verifier).Query().Get("code"), verifier)
	if first.status != http.StatusOK {
		t.Fatalf("login: %v", first.raw)
	}
	meta := map[string]any{"redirect_uris": []string{"https://app.example/cb"}, "client_name": strings.Repeat("n", 3500)}
	body, _ := json.Marshal(meta)
	created := 0
	for i := range 1000 {
		code, out := e.registerFrom(fmt.Sprintf("198.51.100.%d:4000", i%100), body)
		if code != http.StatusCreated {
			t.Fatalf("registration %d: %d %v", i, code, out)
		}
		created++
	}
	st := e.store.Stats()
	t.Logf("after %d registrations: %d clients, %d bytes", created, st.Clients, st.ClientBytes)
	if st.Clients > max {
		t.Errorf("%d clients stored, cap %d", st.Clients, max)
	}
	if st.Clients > 0 && st.ClientBytes/st.Clients > 2*authserver.DefaultRegistrationBytes {
		t.Errorf("clients average %d bytes", st.ClientBytes/st.Clients)
	}
	if again := e.refresh(inUse, first.RefreshToken); again.status != http.StatusOK {
		t.Errorf("the client in use after the flood: %v", again.raw)
	}

	big, _ := json.Marshal(map[string]any{"redirect_uris": []string{"https://app.example/cb"}, "client_name": strings.Repeat("n", 60<<10)})
	code, out := e.registerFrom("203.0.113.1:4000", big)
	if code != http.StatusBadRequest || out["error"] != "invalid_client_metadata" ||
		!strings.Contains(fmt.Sprint(out["error_description"]), fmt.Sprint(authserver.DefaultRegistrationBytes, " bytes")) {
		t.Errorf("a 60 KiB registration: %d %v, want invalid_client_metadata naming the limit", code, out)
	}
}

// TestRegistrationCapAllInUse: when every stored client is in use, a new
// registration is refused with an error that says why.
func TestRegistrationCapAllInUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakeidp.Options{}, func(o *authserver.Options) { o.Limits.Clients = 2 })
	for range 2 {
		c := e.publicClient()
		if tr := e.exchange(c, e.login(c, verifier).Query().Get("code"), verifier); tr.status != http.StatusOK {
			t.Fatalf("login: %v", tr.raw)
		}
	}
	code, out := e.register(map[string]any{"redirect_uris": []string{redirectURI}})
	if code != http.StatusServiceUnavailable || out["error"] != "temporarily_unavailable" || !strings.Contains(fmt.Sprint(out["error_description"]), "all in use") {
		t.Errorf("registration with every client in use: %d %v", code, out)
	}
}

// TestRegistrationExpiry: a registration no token was ever issued to is
// forgotten after a day; one in use is kept for 30 days after its last
// use.
func TestRegistrationExpiry(t *testing.T) {
	t.Parallel()
	c := fakeclock.New(time.Now())
	e := newEnv(t, fakeidp.Options{}, withClock(c))
	unused := e.publicClient()
	used := e.publicClient()
	if tr := e.exchange(used, e.login(used, verifier).Query().Get("code"), verifier); tr.status != http.StatusOK {
		t.Fatalf("login: %v", tr.raw)
	}
	known := func(client string) bool {
		resp, err := newBrowser().Get(e.authorizeURL(client, verifier, nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK // the consent page; an unknown client gets an error page
	}
	if !known(unused) || !known(used) {
		t.Fatal("fresh registrations are unknown")
	}
	c.Add(authserver.DefaultUnusedClientExpiry + time.Hour)
	if known(unused) {
		t.Error("a registration never used is kept after a day")
	}
	if !known(used) {
		t.Error("a registration in use was forgotten after a day")
	}
	c.Add(authserver.DefaultIdleClientExpiry)
	if known(used) {
		t.Error("a registration unused for 30 days is kept")
	}
}

// TestUnverifiedEmail: an email address the provider does not vouch for is
// neither copied into vmcp's access token nor kept among the grant's
// claims (which policies see): OIDC sources need "email_verified": true
// beside it; an OAuth 2.0 provider's email counts only if the operator
// declared it verified (or the source says so).
func TestUnverifiedEmail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		idp       fakeidp.Options
		mutate    func(*authserver.Options)
		wantEmail bool
	}{
		{"oidc, email_verified false", fakeidp.Options{Claims: map[string]any{"email": "ceo@example.com", "email_verified": false}}, nil, false},
		{"oidc, no email_verified", fakeidp.Options{Claims: map[string]any{"email": "ceo@example.com"}}, nil, false},
		{"oidc, email_verified true", fakeidp.Options{Claims: map[string]any{"email": "ceo@example.com", "email_verified": true}}, nil, true},
		{"oidc, email_verified \"true\"", fakeidp.Options{Claims: map[string]any{"email": "ceo@example.com", "email_verified": "true"}}, nil, true},
		{"oidc, mapped nested claim unverified", fakeidp.Options{Claims: map[string]any{"corp": map[string]any{"mail": "ceo@example.com"}}},
			func(o *authserver.Options) { o.Providers[0].Claims.Email = "corp.mail" }, false},
		{"oauth2, not declared verified", fakeidp.Options{Mode: fakeidp.GitHub, Subject: "7", Claims: map[string]any{"email": "ceo@example.com"}}, nil, false},
		{"oauth2, declared verified", fakeidp.Options{Mode: fakeidp.GitHub, Subject: "7", Claims: map[string]any{"email": "ceo@example.com"}},
			func(o *authserver.Options) { o.Providers[0].EmailVerified = true }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.idp, tc.mutate)
			client := e.publicClient()
			provider := "idp"
			if tc.idp.Mode == fakeidp.GitHub {
				provider = "github"
			}
			link, _ := e.startLogin(e.browser, client, provider)
			resp := e.finishLogin(e.browser, link)
			resp.Body.Close()
			loc, _ := resp.Location()
			if loc == nil || loc.Query().Get("code") == "" {
				t.Fatalf("login: %d to %v", resp.StatusCode, loc)
			}
			tr := e.exchange(client, loc.Query().Get("code"), verifier)
			if tr.status != http.StatusOK {
				t.Fatalf("token: %v", tr.raw)
			}
			c := e.claims(tr.AccessToken)
			if _, got := c["email"]; got != tc.wantEmail {
				t.Errorf("email in vmcp's token: %v, want %v (claims %v)", got, tc.wantEmail, c)
			}
			g, err := e.as.StoredGrant(t.Context(), c["gid"].(string))
			if err != nil {
				t.Fatal(err)
			}
			all, _ := json.Marshal([]any{g.IDTokenClaims, g.UserinfoClaims, g.AccessTokenClaims})
			if got := strings.Contains(string(all), "ceo@example.com"); got != tc.wantEmail {
				t.Errorf("email among the grant's claims: %v, want %v (%s)", got, tc.wantEmail, all)
			}
		})
	}
}

func withLogs(logs *logbuf.Buffer) func(*authserver.Options) {
	return func(o *authserver.Options) { o.Logger = slog.New(slog.NewTextHandler(logs, nil)) }
}

// TestRefreshedTokenIssuedNow: the access token of a refresh says when it
// was issued (iat), not when the authorization's first token was.
func TestRefreshedTokenIssuedNow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakeidp.Options{}, nil)
	client := e.publicClient()
	first := e.exchange(client, e.login(client, verifier).Query().Get("code"), verifier)
	iat1 := e.claims(first.AccessToken)["iat"].(float64)
	for deadline := time.Now().Add(5 * time.Second); float64(time.Now().Unix()) <= iat1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the clock did not pass the first token's second within 5s")
		}
	}
	second := e.refresh(client, first.RefreshToken)
	if second.status != http.StatusOK {
		t.Fatalf("refresh: %v", second.raw)
	}
	c := e.claims(second.AccessToken)
	iat2, exp2 := c["iat"].(float64), c["exp"].(float64)
	if iat2 <= iat1 || exp2-iat2 > (15*time.Minute+time.Second).Seconds() {
		t.Errorf("refreshed token iat %v exp %v (first token iat %v): want iat the time of the refresh, 15m before exp", iat2, exp2, iat1)
	}
}

// TestRefreshReuseLogged: a retired refresh token presented again is a
// security event, logged at WARN with the client and the grant, never the
// token.
func TestRefreshReuseLogged(t *testing.T) {
	t.Parallel()
	logs := &logbuf.Buffer{}
	e := newEnv(t, fakeidp.Options{}, withLogs(logs))
	client := e.publicClient()
	first := e.exchange(client, e.login(client, verifier).Query().Get("code"), verifier)
	gid := e.claims(first.AccessToken)["gid"].(string)
	second := e.refresh(client, first.RefreshToken)
	if reuse := e.refresh(client, first.RefreshToken); reuse.Error != "invalid_grant" {
		t.Fatalf("reuse: %v", reuse.raw)
	}
	var line string
	for l := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(l, "refresh token reuse") {
			line = l
		}
	}
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "client_id="+client) || !strings.Contains(line, "grant="+gid) {
		t.Errorf("reuse log line %q: want WARN with client_id=%s and grant=%s", line, client, gid)
	}
	for _, secret := range []string{first.RefreshToken, second.RefreshToken, first.AccessToken} {
		if strings.Contains(logs.String(), secret) {
			t.Error("a token is in the log")
		}
	}
}

// TestIssuerTrailingSlash: an OIDC issuerUrl that differs from the
// provider's issuer (a trailing slash) fails as OIDC requires, but the log
// and the error the client gets say what did not match, not that the
// provider cannot be reached.
func TestIssuerTrailingSlash(t *testing.T) {
	t.Parallel()
	logs := &logbuf.Buffer{}
	e := newEnv(t, fakeidp.Options{}, func(o *authserver.Options) {
		withLogs(logs)(o)
		o.Providers[0].IssuerURL += "/"
	})
	loc, _ := e.authorize(e.browser, e.publicClient(), "idp")
	configured, discovered := e.idp.URL()+"/", e.idp.URL()
	if loc == nil || loc.Query().Get("error") != "server_error" ||
		!strings.Contains(loc.Query().Get("error_description"), fmt.Sprintf("issuerUrl is '%s', but the provider names its issuer '%s'", configured, discovered)) {
		t.Errorf("authorization with a mismatched issuerUrl: redirect to %v; want server_error naming both issuers", loc)
	}
	if out := logs.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "issuerUrl="+configured) || !strings.Contains(out, "issuer="+discovered) {
		t.Errorf("log lacks the mismatch:\n%s", out)
	}
}
