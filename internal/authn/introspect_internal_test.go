package authn

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestIntrospectorCacheBound: the cache, keyed by the SHA-256 of the token,
// never holds more than its bound, is full after many tokens, and still
// answers for a token it holds without asking the endpoint again.
func TestIntrospectorCacheBound(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_ = r.ParseForm()
		if strings.HasPrefix(r.PostForm.Get("token"), "active") {
			fmt.Fprintf(w, `{"active":true,"sub":"u","exp":%d}`, time.Now().Add(time.Hour).Unix())
			return
		}
		fmt.Fprint(w, `{"active":false}`)
	}))
	t.Cleanup(srv.Close)
	// A clock that stands still: no entry expires during the test, so what
	// leaves the cache leaves it because of the bound.
	start := time.Now()
	in, err := NewIntrospector(&IntrospectionOptions{Endpoint: srv.URL, HTTPClient: srv.Client(), MaxCacheEntries: 20,
		Now: func() time.Time { return start }})
	if err != nil {
		t.Fatal(err)
	}
	lastActive := ""
	for i := range 100 {
		prefix := "inactive"
		if i%2 == 0 {
			prefix = "active"
		}
		token := fmt.Sprintf("%s-%d", prefix, i)
		if prefix == "active" {
			lastActive = token
		}
		_, _ = in.Authenticate(t.Context(), token)
		n := in.cache.len()
		_, keyed := in.cache.get(sha256.Sum256([]byte(token)), start)
		if !keyed {
			t.Errorf("token %d is not cached under its SHA-256", i)
		}
		if n > 20 {
			t.Fatalf("after %d tokens the cache holds %d entries, want at most 20", i+1, n)
		}
	}
	if n := hits.Load(); n != 100 {
		t.Errorf("introspected %d times, want 100", n)
	}
	n := in.cache.len()
	if n != 20 {
		t.Errorf("after 100 tokens the cache holds %d entries, want the bound, 20", n)
	}
	// The last active token is still cached: no new introspection.
	id, err := in.Authenticate(t.Context(), lastActive)
	if err != nil || id == nil || id.Subject != "u" {
		t.Errorf("Authenticate(%s) = %+v, %v; want subject u", lastActive, id, err)
	}
	if n := hits.Load(); n != 100 {
		t.Errorf("re-authenticating %s introspected again (%d calls, want 100): not a cache hit", lastActive, n)
	}
}
