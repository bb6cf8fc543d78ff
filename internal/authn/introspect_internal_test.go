package authn

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

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
	in, err := NewIntrospector(&IntrospectionOptions{Endpoint: srv.URL, HTTPClient: srv.Client(), MaxCacheEntries: 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		prefix := "inactive"
		if i%2 == 0 {
			prefix = "active"
		}
		_, _ = in.Authenticate(t.Context(), fmt.Sprintf("%s-%d", prefix, i))
		in.mu.Lock()
		n := len(in.cache)
		for k := range in.cache {
			if strings.Contains(string(k[:]), prefix) {
				t.Errorf("the cache is keyed by the token")
			}
		}
		in.mu.Unlock()
		if n > 20 {
			t.Fatalf("after %d tokens the cache holds %d entries, want at most 20", i+1, n)
		}
	}
	if n := hits.Load(); n != 100 {
		t.Errorf("introspected %d times, want 100", n)
	}
}
