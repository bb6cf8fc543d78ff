package toolsearch

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/pkoukk/tiktoken-go"
	tiktokenloader "github.com/pkoukk/tiktoken-go-loader"
)

// Tokens are counted with the o200k_base encoding (GPT-4o and later),
// from tiktoken-go's embedded copy: no download.
var encoding = sync.OnceValues(func() (*tiktoken.Tiktoken, error) {
	tiktoken.SetBpeLoader(tiktokenloader.NewOfflineLoader())
	return tiktoken.GetEncoding("o200k_base")
})

func countTokens(tb testing.TB, v any) int {
	tb.Helper()
	enc, err := encoding()
	if err != nil {
		tb.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return len(enc.Encode(string(b), nil, nil))
}

// contextTokens is what a client puts in its model's context for the
// benchmark catalog: the tool definitions it lists (name, title,
// description, input schema, as JSON), without and with search mode; with
// it, also the answer of one find_tool call at the default limit, averaged
// over the labelled tasks.
type contextTokens struct {
	full, mode, search float64
	real               float64 // the captured servers' tools alone, listed
	realTools          int
}

func measureTokens(tb testing.TB) contextTokens {
	tb.Helper()
	c := loadCatalog(tb)
	listed := func(ts []*mcp.Tool) any {
		out := make([]foundTool, len(ts))
		for i, t := range ts {
			out[i] = foundTool{Name: t.Name, Title: t.Title, Description: t.Description, InputSchema: t.InputSchema}
		}
		return out
	}
	all := make([]*mcp.Tool, len(c.Tools))
	var real []*mcp.Tool
	invs, err := realInventories()
	if err != nil {
		tb.Fatal(err)
	}
	for i, t := range c.Tools {
		all[i] = t.Def
		for _, inv := range invs {
			if inv.Backend == t.Backend {
				real = append(real, t.Def)
			}
		}
	}
	m := NewMode(New(nil), nil)
	ix := m.Index(c.Tools)
	var tok contextTokens
	tok.full = float64(countTokens(tb, listed(all)))
	tok.real, tok.realTools = float64(countTokens(tb, listed(real))), len(real)
	tok.mode = float64(countTokens(tb, listed(m.Listed(ix, nil))))
	queries := loadQueries(tb)
	for _, q := range queries {
		args, _ := json.Marshal(map[string]string{"query": q.query})
		res, err := m.Call(context.Background(), ix, callReq(FindToolName, string(args)), allowAll, noCall)
		if err != nil {
			tb.Fatal(err)
		}
		tok.search += float64(countTokens(tb, res.StructuredContent))
	}
	tok.search /= float64(len(queries))
	return tok
}

// TestContextTokens checks the reduction target: at least 90% fewer
// tokens in context with search mode, counting one search's answer.
func TestContextTokens(t *testing.T) {
	t.Parallel()
	tok := measureTokens(t)
	reduction := 1 - (tok.mode+tok.search)/tok.full
	t.Logf("%d tools: %.0f tokens listed (the %d tools of the real servers alone: %.0f); search mode: %.0f listed + %.0f per find_tool answer: %.1f%% fewer",
		len(loadCatalog(t).Tools), tok.full, tok.realTools, tok.real, tok.mode, tok.search, 100*reduction)
	if reduction < 0.9 {
		t.Errorf("search mode saves %.1f%% of the context tokens, want at least 90%%", 100*reduction)
	}
}

// BenchmarkContextTokens reports the same figures as metrics.
func BenchmarkContextTokens(b *testing.B) {
	tok := measureTokens(b)
	for i := 0; i < b.N; i++ {
	}
	b.ReportMetric(tok.full, "tokens-listed")
	b.ReportMetric(tok.real, "tokens-listed-real-servers")
	b.ReportMetric(tok.mode, "tokens-listed-search-mode")
	b.ReportMetric(tok.search, "tokens-per-find")
	b.ReportMetric(100*(1-(tok.mode+tok.search)/tok.full), "%-fewer")
}
