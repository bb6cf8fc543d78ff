package hydra_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"github.com/vmcp-dev/vmcp/internal/testsupport/hydra"
)

// TestNodeFollower runs the redirect follower of test/js/mcp-oauth-client.mjs
// through a gateway and Hydra, and exchanges the code it prints.
func TestNodeFollower(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, nil)
	srv, conf, verifier := gateway(t, h)
	login := hydra.Login{Subject: "node-user", IDTokenClaims: map[string]any{"email": "bob@example.com", "name": "Bob"}}
	start := srv.URL + "/authorize?" + url.Values{"redirect_uri": {redirectURI}, "state": {"node-state"}}.Encode()
	args := append(h.NodeArgs(login), "--redirect-uri", redirectURI, "--authorize-url", start)
	out, err := hydra.RunNodeScript(t.Context(), t, "mcp-oauth-client.mjs", args...)
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var got struct{ URL, Code, State string }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	if got.State != "node-state" || got.Code == "" || !strings.HasPrefix(got.URL, redirectURI) {
		t.Errorf("node output %+v", got)
	}
	tok, err := conf.Exchange(t.Context(), got.Code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	claims, _ := jwtClaims(idToken)
	if diff := cmp.Diff(map[string]any{"sub": "node-user", "email": "bob@example.com", "name": "Bob"},
		pick(claims, "sub", "email", "name")); diff != "" {
		t.Errorf("id_token claims (-want +got):\n%s", diff)
	}

	t.Run("reject", func(t *testing.T) {
		login.Reject = true
		args := append(h.NodeArgs(login), "--redirect-uri", redirectURI, "--authorize-url", start)
		out, err := hydra.RunNodeScript(t.Context(), t, "mcp-oauth-client.mjs", args...)
		if _, ok := errors.AsType[*exec.ExitError](err); !ok {
			t.Fatalf("node: %v, want a non-zero exit", err)
		}
		var got struct {
			Error      string `json:"error"`
			OAuthError string `json:"oauth_error"`
		}
		if err := json.Unmarshal(out, &got); err != nil || got.OAuthError != "access_denied" {
			t.Errorf("node output %q (%v), want oauth_error access_denied", out, err)
		}
	})

	t.Run("no server", func(t *testing.T) {
		// Without --url the MCP mode fails cleanly with a JSON error.
		out, err := hydra.RunNodeScript(t.Context(), t, "mcp-oauth-client.mjs", "tools")
		if _, ok := errors.AsType[*exec.ExitError](err); !ok || !strings.Contains(string(out), `"error"`) {
			t.Errorf("node = %q, %v; want a JSON error and a non-zero exit", out, err)
		}
	})
}

// mcpServer starts an MCP server that presents itself as its own
// authorization server but delegates everything to Hydra: it answers 401
// with a resource_metadata pointer, serves protected resource metadata and
// authorization server metadata that point to Hydra's endpoints, and checks
// tokens by introspection. Its one tool,
// whoami, returns the subject of the caller's token.
func mcpServer(t *testing.T, h *hydra.Hydra) string {
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	server := mcp.NewServer(&mcp.Implementation{Name: "hydra-protected", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "Returns the caller's subject."},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, struct{}, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: req.Extra.TokenInfo.UserID}}}, struct{}{}, nil
		})
	verify := func(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		resp, err := http.PostForm(h.AdminURL()+"/admin/oauth2/introspect", url.Values{"token": {token}})
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var in struct {
			Active bool   `json:"active"`
			Sub    string `json:"sub"`
			Scope  string `json:"scope"`
			Exp    int64  `json:"exp"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&in); err != nil {
			return nil, err
		}
		if !in.Active {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{UserID: in.Sub, Scopes: strings.Fields(in.Scope), Expiration: time.Unix(in.Exp, 0)}, nil
	}
	// Hydra v2.3.0 serves dynamic client registration at /oauth2/register
	// when it is enabled, but does not advertise it in its discovery
	// document, and its answer has "client_uri": "" and "contacts": null,
	// which the TypeScript SDK rejects. So the server publishes Hydra's
	// metadata as its own, with a registration endpoint of its own that
	// forwards to Hydra and drops the empty fields.
	resp, err := http.Get(h.PublicURL() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var asMeta map[string]any
	err = json.NewDecoder(resp.Body).Decode(&asMeta)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	asMeta["registration_endpoint"] = srv.URL + "/register"
	mux.HandleFunc("POST /register", func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Post(h.PublicURL()+"/oauth2/register", "application/json", r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var client map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&client); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for k, v := range client {
			if v == nil || v == "" {
				delete(client, k)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		_ = json.NewEncoder(w).Encode(client)
	})
	mux.HandleFunc("/.well-known/oauth-authorization-server", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(asMeta)
	})
	metadataURL := srv.URL + "/.well-known/oauth-protected-resource/mcp"
	mux.Handle("/.well-known/oauth-protected-resource/mcp", auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource:             srv.URL + "/mcp",
		AuthorizationServers: []string{srv.URL},
		ScopesSupported:      []string{"openid", "email", "profile", "offline_access"},
	}))
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	mux.Handle("/mcp", auth.RequireBearerToken(verify, &auth.RequireBearerTokenOptions{ResourceMetadataURL: metadataURL})(handler))
	return srv.URL + "/mcp"
}

// TestNodeMCPFlow runs the whole MCP authorization flow of
// test/js/mcp-oauth-client.mjs, with Hydra as the authorization server
// (dynamic client registration enabled) and a Go MCP server as the resource.
func TestNodeMCPFlow(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, &hydra.Options{Env: []string{"OIDC_DYNAMIC_CLIENT_REGISTRATION_ENABLED=true"}})
	mcpURL := mcpServer(t, h)
	login := hydra.Login{Subject: "mcp-user"}

	args := append(h.NodeArgs(login), "--url", mcpURL, "script",
		`[{"op":"tools"},{"op":"call","name":"whoami","arguments":{}}]`)
	out, err := hydra.RunNodeScript(t.Context(), t, "mcp-oauth-client.mjs", args...)
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var results []json.RawMessage
	if err := json.Unmarshal(out, &results); err != nil || len(results) != 2 {
		t.Fatalf("node output %s: %v, want two results", out, err)
	}
	var tools mcp.ListToolsResult
	if err := json.Unmarshal(results[0], &tools); err != nil || len(tools.Tools) != 1 || tools.Tools[0].Name != "whoami" {
		t.Errorf("tools/list = %s (%v), want whoami", results[0], err)
	}
	var call struct {
		Content []struct{ Text string }
	}
	if err := json.Unmarshal(results[1], &call); err != nil || len(call.Content) != 1 || call.Content[0].Text != "mcp-user" {
		t.Errorf("whoami = %s (%v), want mcp-user", results[1], err)
	}

	t.Run("token-only", func(t *testing.T) {
		out, err := hydra.RunNodeScript(t.Context(), t, "mcp-oauth-client.mjs",
			append(h.NodeArgs(login), "--url", mcpURL, "--token-only")...)
		if err != nil {
			t.Fatalf("node: %v\n%s", err, out)
		}
		var tok struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
			IDToken      string `json:"id_token"`
			ClientID     string `json:"client_id"`
		}
		if err := json.Unmarshal(out, &tok); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok.AccessToken, "ory_at_") || !strings.HasPrefix(tok.RefreshToken, "ory_rt_") || tok.ClientID == "" {
			t.Errorf("tokens = %+v", tok)
		}
		if active, claims := h.Introspect(t, tok.AccessToken); !active || claims["sub"] != "mcp-user" || claims["client_id"] != tok.ClientID {
			t.Errorf("introspection = %v", claims)
		}
	})

	t.Run("call", func(t *testing.T) {
		out, err := hydra.RunNodeScript(t.Context(), t, "mcp-oauth-client.mjs",
			append(h.NodeArgs(hydra.Login{Subject: "other"}), "--url", mcpURL, "call", "whoami", "{}")...)
		if err != nil || !strings.Contains(string(out), `"text": "other"`) {
			t.Errorf("node = %s, %v; want whoami = other", out, err)
		}
	})

	t.Run("reject", func(t *testing.T) {
		out, err := hydra.RunNodeScript(t.Context(), t, "mcp-oauth-client.mjs",
			append(h.NodeArgs(hydra.Login{Reject: true}), "--url", mcpURL, "tools")...)
		if _, ok := errors.AsType[*exec.ExitError](err); !ok || !strings.Contains(string(out), `"oauth_error":"access_denied"`) {
			t.Errorf("node = %s, %v; want oauth_error access_denied and a non-zero exit", out, err)
		}
	})

	t.Run("no authorization asked", func(t *testing.T) {
		// A server that lets the client in without the flow is a failure
		// in every mode, so tests built on the client cannot pass without
		// an authorization flow.
		open := openMCPServer(t)
		for _, command := range [][]string{{"tools"}, {"call", "whoami", "{}"},
			{"script", `[{"op":"tools"},{"op":"call","name":"whoami","arguments":{}}]`}, {"--token-only"}} {
			out, err := hydra.RunNodeScript(t.Context(), t, "mcp-oauth-client.mjs",
				append(append(h.NodeArgs(login), "--url", open), command...)...)
			if _, ok := errors.AsType[*exec.ExitError](err); !ok || !strings.Contains(string(out), "the server did not ask for authorization") {
				t.Errorf("%v: node = %s, %v; want a non-zero exit: the server did not ask for authorization", command, out, err)
			}
		}
	})
}

// openMCPServer starts an MCP server with the whoami tool that asks for no
// authorization at all.
func openMCPServer(t *testing.T) string {
	server := mcp.NewServer(&mcp.Implementation{Name: "open", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "Returns nobody."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, struct{}, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "nobody"}}}, struct{}{}, nil
		})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp"
}
