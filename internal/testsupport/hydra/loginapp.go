package hydra

import (
	"context"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The login app is Hydra's standard pattern for a login and consent
// provider: Hydra sends the browser to its login page with a
// login_challenge; the page asks who the user is; its form handler accepts
// (or rejects) the challenge through Hydra's admin API and redirects the
// browser where Hydra says. The consent page does the same with a
// consent_challenge. A remembered login or consent (skip) is accepted
// without a page. The user is the [Login] of the instance, except that the
// subject is what was typed into the login form.

// Element ids of the login app's pages, for tests that drive a browser.
const (
	LoginUsernameField = "username"
	LoginPasswordField = "password"
	LoginSubmit        = "login"
	LoginCancel        = "cancel"
	ConsentAllow       = "allow"
	ConsentDeny        = "deny"
)

func (h *Hydra) startLoginApp(host string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	h.appURL = "http://" + host + ":" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	h.loginURL, _ = url.Parse(h.appURL + "/login")
	h.consent, _ = url.Parse(h.appURL + "/consent")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", h.loginPage)
	mux.HandleFunc("POST /login", h.loginSubmit)
	mux.HandleFunc("GET /consent", h.consentPage)
	mux.HandleFunc("POST /consent", h.consentSubmit)
	h.app = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = h.app.Serve(ln) }()
	return nil
}

func (h *Hydra) stopLoginApp() {
	if h.app != nil {
		_ = h.app.Close()
	}
}

// LoginAppURL returns the base URL of the login app (empty without
// Options.LoginPages): the origin a gateway's consent page must allow the
// browser to be redirected to (its loginOrigins).
func (h *Hydra) LoginAppURL() string { return h.appURL }

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · Test IdP</title></head>
<body><main><h1>Log in to the test identity provider</h1>
{{if .Client}}<p>{{.Client}} asks you to log in.</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="challenge" value="{{.Challenge}}">
<p><label for="username">Email</label> <input id="username" name="username" type="email" autocomplete="username" value="alice@example.com"></p>
<p><label for="password">Password</label> <input id="password" name="password" type="password" autocomplete="current-password"></p>
<p><button id="login" name="action" value="login">Log in</button> <button id="cancel" name="action" value="cancel">Cancel</button></p>
</form></main></body></html>`))

var consentPageTmpl = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Allow access · Test IdP</title></head>
<body><main><h1>Allow {{.Client}} to see your profile?</h1>
<p>Scopes: {{range .Scopes}}{{.}} {{end}}</p>
<form method="post" action="/consent">
<input type="hidden" name="challenge" value="{{.Challenge}}">
<p><button id="allow" name="action" value="allow">Allow</button> <button id="deny" name="action" value="deny">Deny</button></p>
</form></main></body></html>`))

type challengePage struct {
	Challenge, Client string
	Scopes            []string
}

type challengeRequest struct {
	Skip           bool     `json:"skip"`
	Subject        string   `json:"subject"`
	RequestedScope []string `json:"requested_scope"`
	Audience       []string `json:"requested_access_token_audience"`
	Client         struct {
		Name string `json:"client_name"`
		ID   string `json:"client_id"`
	} `json:"client"`
}

func (h *Hydra) challenge(ctx context.Context, kind, challenge string) (*challengeRequest, error) {
	var req challengeRequest
	err := h.call(ctx, http.MethodGet, "/admin/oauth2/auth/requests/"+kind, url.Values{kind + "_challenge": {challenge}}, nil, &req)
	return &req, err
}

// finish calls an accept or reject endpoint and redirects the browser where
// Hydra says.
func (h *Hydra) finish(w http.ResponseWriter, r *http.Request, kind, challenge, verb string, body any) {
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	q := url.Values{kind + "_challenge": {challenge}}
	if err := h.call(r.Context(), http.MethodPut, "/admin/oauth2/auth/requests/"+kind+"/"+verb, q, body, &out); err != nil || out.RedirectTo == "" {
		http.Error(w, "hydra login app: "+kind+" "+verb+" failed", http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, out.RedirectTo, http.StatusFound)
}

func (h *Hydra) loginPage(w http.ResponseWriter, r *http.Request) {
	ch := r.URL.Query().Get("login_challenge")
	req, err := h.challenge(r.Context(), "login", ch)
	if err != nil {
		http.Error(w, "unknown login challenge", http.StatusBadRequest)
		return
	}
	if req.Skip {
		h.finish(w, r, "login", ch, "accept", map[string]any{"subject": req.Subject})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = loginTmpl.Execute(w, challengePage{Challenge: ch, Client: req.Client.Name})
}

func (h *Hydra) loginSubmit(w http.ResponseWriter, r *http.Request) {
	ch := r.PostFormValue("challenge")
	if r.PostFormValue("action") != "login" {
		h.finish(w, r, "login", ch, "reject", map[string]any{
			"error": "access_denied", "error_description": "The user cancelled the login."})
		return
	}
	subject := r.PostFormValue("username")
	if subject == "" {
		subject = h.login.subject()
	}
	h.finish(w, r, "login", ch, "accept", map[string]any{"subject": subject, "remember": true, "remember_for": 3600})
}

func (h *Hydra) consentPage(w http.ResponseWriter, r *http.Request) {
	ch := r.URL.Query().Get("consent_challenge")
	req, err := h.challenge(r.Context(), "consent", ch)
	if err != nil {
		http.Error(w, "unknown consent challenge", http.StatusBadRequest)
		return
	}
	if req.Skip {
		h.acceptConsent(w, r, ch, req)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = consentPageTmpl.Execute(w, challengePage{Challenge: ch, Client: req.Client.Name + " (" + req.Client.ID + ")", Scopes: req.RequestedScope})
}

func (h *Hydra) consentSubmit(w http.ResponseWriter, r *http.Request) {
	ch := r.PostFormValue("challenge")
	if r.PostFormValue("action") != "allow" {
		h.finish(w, r, "consent", ch, "reject", map[string]any{
			"error": "access_denied", "error_description": "The user refused access."})
		return
	}
	req, err := h.challenge(r.Context(), "consent", ch)
	if err != nil {
		http.Error(w, "unknown consent challenge", http.StatusBadRequest)
		return
	}
	h.acceptConsent(w, r, ch, req)
}

func (h *Hydra) acceptConsent(w http.ResponseWriter, r *http.Request, ch string, req *challengeRequest) {
	session := map[string]any{"id_token": h.login.idTokenClaims()}
	if h.login.AccessTokenClaims != nil {
		session["access_token"] = h.login.AccessTokenClaims
	}
	h.finish(w, r, "consent", ch, "accept", map[string]any{
		"grant_scope": req.RequestedScope, "grant_access_token_audience": req.Audience,
		"session": session, "remember": true, "remember_for": 3600,
	})
}
