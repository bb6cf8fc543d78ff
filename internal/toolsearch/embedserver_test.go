package toolsearch

import (
	"encoding/json"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// embedServer is a real OpenAI-compatible embeddings endpoint for tests,
// deterministic: a text's vector is a hashed bag of its words (stemmed,
// with a synonym table mapping everyday words to the words tools use) and
// of their character trigrams. It knows no language beyond that table: it
// shows that hybrid ranking lifts the lexical one when the semantic signal
// knows synonyms, not what a real embedding model would score.
type embedServer struct {
	*httptest.Server
	mode     atomic.Value // "ok", "down", "slow", "garbage-*"
	requests atomic.Int64 // requests answered or refused
	inputs   atomic.Int64 // texts embedded
	release  chan struct{}
}

const testDims = 384

func newEmbedServer(t testing.TB) *embedServer {
	s := &embedServer{release: make(chan struct{})}
	s.mode.Store("ok")
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		close(s.release)
		s.Close()
	})
	return s
}

func (s *embedServer) setMode(m string) { s.mode.Store(m) }

func (s *embedServer) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" {
		http.NotFound(w, r)
		return
	}
	var req struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model == "" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	mode := s.mode.Load().(string)
	switch mode {
	case "down":
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	case "slow":
		select { // longer than any client timeout: until the client leaves
		case <-r.Context().Done():
		case <-s.release:
		}
		return
	case "garbage-json":
		w.Write([]byte(`{"data": [`))
		return
	}
	s.inputs.Add(int64(len(req.Input)))
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	}
	out := struct {
		Object string `json:"object"`
		Data   []item `json:"data"`
		Model  string `json:"model"`
	}{Object: "list", Model: req.Model}
	for i, text := range req.Input {
		v := testVector(text)
		switch mode {
		case "garbage-dims":
			v = v[:testDims/2]
		case "garbage-zero":
			v = make([]float64, testDims)
		}
		out.Data = append(out.Data, item{Object: "embedding", Index: i, Embedding: v})
	}
	if mode == "garbage-count" {
		out.Data = out.Data[:len(out.Data)-1]
	}
	w.Header().Set("Content-Type", "application/json")
	if mode == "garbage-strings" {
		w.Write([]byte(`{"data":[{"index":0,"embedding":["NaN"]}]}`))
		return
	}
	json.NewEncoder(w).Encode(out)
}

// testVector is the deterministic embedding of text.
func testVector(text string) []float64 {
	v := make([]float64, testDims)
	add := func(feature string, weight float64) {
		h := fnv.New64a()
		h.Write([]byte(feature))
		x := h.Sum64()
		sign := 1.0
		if x>>63 == 1 {
			sign = -1
		}
		v[x%testDims] += sign * weight
	}
	for _, w := range terms(nil, text) {
		if c, ok := testSynonyms[w]; ok {
			w = c
		}
		add("w:"+w, 1)
		p := "^" + w + "$"
		for i := 0; i+3 <= len(p); i++ {
			add("t:"+p[i:i+3], 0.25)
		}
	}
	return v
}

// testSynonyms maps stems of everyday words to the stems tools use. It was
// written for the tasks of testdata/queries.txt, knowing where the lexical
// ranking missed (docs/toolsearch.md says so).
var testSynonyms = func() map[string]string {
	groups := []struct{ concept, words string }{
		{"directori", "folder folders dir dirs"},
		{"issu", "bug bugs ticket tickets report"},
		{"repositori", "repo repos"},
		{"messag", "ping text texts chat"},
		{"creat", "make new open start set setup"},
		{"delet", "remove forget drop erase"},
		{"read", "show view load see"},
		{"write", "save overwrite replace"},
		{"entiti", "person people thing"},
		{"relat", "link manages connect"},
		{"observ", "note prefers fact"},
		{"move", "rename"},
		{"imag", "picture photo draw"},
		{"direct", "drive route way"},
		{"geocod", "latitude longitude coordinates"},
		{"place", "shops restaurant cafe coffee"},
		{"distanc", "long far travel"},
		{"elev", "high altitude height sea level"},
		{"sum", "add plus total"},
		{"inventori", "stock units"},
		{"forecast", "rain weekend tomorrow"},
		{"exchang", "euros dollar convert currency"},
		{"deactiv", "disable departed suspend"},
		{"dispatch", "kick trigger manually"},
		{"size", "space big"},
		{"info", "modified"},
		{"search", "find look"},
		{"graph", "memory remember stored"},
		{"node", "entries"},
	}
	m := map[string]string{}
	for _, g := range groups {
		for _, w := range strings.Fields(g.words) {
			for _, stem := range terms(nil, w) {
				if prev, ok := m[stem]; ok && prev != g.concept {
					panic("testSynonyms: " + stem + " is in two groups")
				}
				m[stem] = g.concept
			}
		}
	}
	return m
}()
