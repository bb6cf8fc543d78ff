package toolsearch

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/time/rate"

	"github.com/vmcp-dev/vmcp/internal/identity"
)

// TestQueryRatePerCaller: one caller searching hard spends its own share
// of the query rate and then ranks lexically; another caller still gets
// semantic searches.
func TestQueryRatePerCaller(t *testing.T) {
	t.Parallel()
	srv := newEmbedServer(t)
	clock := &testClock{now: time.Now()}
	s := startSearcher(t, srv, nil, nil, func(s *Searcher) {
		s.callers = newCallerLimits(4) // one a second each, bursts of three
		s.callers.now = clock.Now
	})
	ix := s.Index(loadCatalog(t).Tools[:200])
	waitEmbedded(t, ix)
	search := func(who string, n int) int64 {
		before := srv.requests.Load()
		for i := range n {
			s.Search(withCaller(context.Background(), who), ix, fmt.Sprintf("%s query number %d", who, i), 5, nil)
		}
		return srv.requests.Load() - before
	}
	if n := search("greedy", 20); n != 3 {
		t.Errorf("the greedy caller made %d query embeddings, want 3 (its burst)", n)
	}
	if n := search("other", 3); n != 3 {
		t.Errorf("another caller made %d query embeddings after the greedy one, want 3", n)
	}
	clock.Add(time.Second)
	if n := search("greedy", 5); n != 1 {
		t.Errorf("a second later the greedy caller made %d query embeddings, want 1", n)
	}
}

// TestCallerBucketsBounded: the buckets are bounded; idle callers' (full)
// buckets make room, and while none can go a new caller is refused.
func TestCallerBucketsBounded(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now()}
	c := newCallerLimits(4)
	c.now = clock.Now
	for i := range maxCallers {
		if !c.allow(fmt.Sprint("caller ", i)) {
			t.Fatalf("caller %d refused", i)
		}
	}
	if c.allow("one more") {
		t.Error("a new caller was let in while every bucket was in use")
	}
	if !c.allow("caller 7") {
		t.Error("a known caller with tokens left was refused")
	}
	clock.Add(time.Minute) // every bucket refills
	if !c.allow("one more") {
		t.Error("a new caller was refused although idle buckets could go")
	}
	if got := len(c.buckets); got != 1 {
		t.Errorf("%d buckets after the idle ones went, want 1", got)
	}
	if newCallerLimits(0.5).limit != rate.Limit(1) {
		t.Error("a caller's share is under one a second")
	}
}

// TestCallerKey: a principal's searches share one bucket whatever the
// session; without a principal, the session is the caller.
func TestCallerKey(t *testing.T) {
	t.Parallel()
	alice := identity.With(context.Background(), &identity.Identity{Issuer: "https://idp", Subject: "alice"})
	if k := caller(alice, &mcp.CallToolRequest{}); k != "p\x00https://idp\x00alice" {
		t.Errorf("alice's key %q", k)
	}
	if k := caller(context.Background(), &mcp.CallToolRequest{}); k != "" {
		t.Errorf("no principal, no session: key %q, want the shared one", k)
	}

	// Anonymous callers over real sessions: one key per session.
	srv := mcp.NewServer(&mcp.Implementation{Name: "keys"}, nil)
	srv.AddTool(&mcp.Tool{Name: "key", InputSchema: map[string]any{"type": "object"}},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: caller(ctx, req)}}}, nil
		})
	key := func(cs *mcp.ClientSession) string {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "key"})
		if err != nil {
			t.Fatal(err)
		}
		return res.Content[0].(*mcp.TextContent).Text
	}
	hs := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	defer hs.Close()
	var keys []string
	for range 2 {
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "c"}, nil).Connect(context.Background(),
			&mcp.StreamableClientTransport{Endpoint: hs.URL, MaxRetries: -1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		first := key(cs)
		if again := key(cs); again != first || first != "s\x00"+cs.ID() || cs.ID() == "" {
			t.Errorf("session %q: keys %q then %q", cs.ID(), first, again)
		}
		keys = append(keys, first)
	}
	if keys[0] == keys[1] {
		t.Errorf("two sessions share the key %q", keys[0])
	}
}
