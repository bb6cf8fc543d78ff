package backend_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/backend"
	"github.com/vmcp-dev/vmcp/internal/backendauth"
	"github.com/vmcp-dev/vmcp/internal/testsupport/logbuf"
)

// recorder is a server that records the requests it gets.
type recorder struct {
	mu      sync.Mutex
	headers []http.Header
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.headers = append(r.headers, req.Header.Clone())
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (r *recorder) got() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.headers
}

// TestRedirectsStayInTheOrigin: a backend that redirects a call to another
// origin gets the call refused, and the other origin gets nothing (not the
// backend's credentials, not vmcp's session ID), on both paths; a redirect
// within the origin that keeps the method (307) is followed, with the
// credentials; one that would turn the POST into a GET (302) is refused.
func TestRedirectsStayInTheOrigin(t *testing.T) {
	t.Parallel()
	other := &recorder{}
	elsewhere := httptest.NewServer(other)
	t.Cleanup(elsewhere.Close)
	s := &rawServer{}
	redirect := func(to string, code int) func(http.ResponseWriter, *http.Request, *rpcMessage) {
		return func(w http.ResponseWriter, r *http.Request, m *rpcMessage) {
			if r.URL.Path == "/moved" { // the redirect's target: answer
				writeJSON(w, result(m, `{"content":[{"type":"text","text":"moved"}]}`))
				return
			}
			http.Redirect(w, r, to, code)
		}
	}
	s.answers = map[string]func(http.ResponseWriter, *http.Request, *rpcMessage){
		"tools/call:away":  redirect(elsewhere.URL+"/mcp", http.StatusTemporaryRedirect),
		"tools/call:moved": redirect("/moved", http.StatusTemporaryRedirect),
		"tools/call:found": redirect("/moved", http.StatusFound),
	}
	key := backendauth.Header{Name: "X-Api-Key", Value: "key-secret"}
	b, _ := startRaw(t, s, nil, backend.Spec{Auth: key})
	mustReady(t, b)
	paths := map[string]func(tool string) (string, error){
		"raw": func(tool string) (string, error) {
			res, err := b.CallToolRaw(t.Context(), nil, backend.RawCall{Name: tool, Arguments: json.RawMessage(`{}`)})
			if err != nil {
				return "", err
			}
			defer res.Release()
			return string(res.Result), nil
		},
		"SDK": func(tool string) (string, error) {
			res, err := b.CallTool(t.Context(), nil, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}})
			if err != nil {
				return "", err
			}
			out, _ := json.Marshal(res)
			return string(out), nil
		},
	}
	for path, call := range paths {
		_, err := call("away")
		var ce *backend.CallError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "another origin") {
			t.Errorf("%s: a redirect to another origin: %v; want a CallError saying so", path, err)
		}
		if res, err := call("moved"); err != nil || !strings.Contains(res, "moved") {
			t.Errorf("%s: a 307 within the origin: %v %v; want it followed", path, res, err)
		}
		if _, err := call("found"); err == nil || !strings.Contains(err.Error(), "would turn a POST into a GET") {
			t.Errorf("%s: a 302 of a POST: %v; want it refused", path, err)
		}
	}
	if got := other.got(); len(got) > 0 {
		t.Errorf("another origin got %d requests (the first with headers %v); want none", len(got), got[0])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.headers {
		if h.Get("X-Api-Key") != "key-secret" {
			t.Errorf("a request within the origin without the backend's credential: %v", h)
		}
	}
	mustReady(t, b)
}

// TestURLSecretsRedacted: secrets in a backend URL (user information, query
// values) appear in no status (what /readyz shows), call error or log
// record, whether the backend is unreachable or answers with an error.
func TestURLSecretsRedacted(t *testing.T) {
	t.Parallel()
	secrets := []string{"alice-secret", "pw-secret", "tok-secret"}
	check := func(t *testing.T, what, text string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s shows the secret %q: %s", what, s, text)
			}
		}
	}
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		var logs logbuf.Buffer
		b := startSet(t, &backend.Options{Logger: testLogger(&logs)}, backend.Spec{
			Name: "down", Transport: backend.StreamableHTTP,
			URL: "http://alice-secret:pw-secret@" + addr + "/mcp?token=tok-secret&region=eu",
		})
		st := b.Status()
		if st.State != backend.StateDown || !strings.Contains(st.Error, "REDACTED") {
			t.Errorf("status %s %q; want down, its URL redacted", st.State, st.Error)
		}
		check(t, "the status", st.Error)
		_, err = b.CallTool(t.Context(), nil, &mcp.CallToolParams{Name: "t"})
		if err == nil {
			t.Fatal("a call to a backend that is down succeeded")
		}
		check(t, "a call's error", err.Error())
		check(t, "the log", logs.String())
	})
	t.Run("answering", func(t *testing.T) {
		t.Parallel()
		s := &rawServer{answers: map[string]func(http.ResponseWriter, *http.Request, *rpcMessage){
			"tools/call:fail": func(w http.ResponseWriter, _ *http.Request, _ *rpcMessage) {
				http.Error(w, "bad", http.StatusBadGateway)
			},
			"tools/call:away": func(w http.ResponseWriter, r *http.Request, _ *rpcMessage) {
				http.Redirect(w, r, "http://elsewhere.invalid/mcp?token=tok-secret", http.StatusTemporaryRedirect)
			},
		}}
		var logs logbuf.Buffer
		b, _ := startRaw(t, s, &backend.Options{Logger: testLogger(&logs)}, backend.Spec{URL: "/mcp?token=tok-secret"})
		mustReady(t, b)
		for _, tool := range []string{"fail", "away"} {
			if _, err := b.CallTool(t.Context(), nil, &mcp.CallToolParams{Name: tool}); err == nil {
				t.Errorf("%s: succeeded", tool)
			} else {
				check(t, tool+"'s error", err.Error())
			}
			res, err := b.CallToolRaw(t.Context(), nil, backend.RawCall{Name: tool})
			if err == nil {
				res.Release()
				t.Errorf("%s: succeeded", tool)
			} else {
				check(t, tool+"'s error (raw)", err.Error())
			}
		}
		check(t, "the log", logs.String())
	})
}
