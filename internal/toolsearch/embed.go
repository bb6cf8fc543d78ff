package toolsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"time"
)

// EmbeddingOptions configure an OpenAI-compatible embeddings endpoint.
type EmbeddingOptions struct {
	// URL is the endpoint itself, such as https://api.openai.com/v1/embeddings:
	// vmcp POSTs {"model", "input": [texts]} to it.
	URL string
	// Model is sent as "model"; it is part of every cache key, so another
	// model never reuses this one's vectors.
	Model string
	// Headers are sent with every request (an Authorization header with an
	// API key, say). They are never logged.
	Headers map[string]string
	// Timeout bounds each request: a search waits at most this long for
	// its query's embedding. Default: 2s.
	Timeout time.Duration
	// SemanticWeight is the share of the semantic score in the hybrid
	// score, between 0 and 1 (the lexical score has the rest). Default:
	// 0.5.
	SemanticWeight float64
	// QueryRate bounds the query embeddings requested per second, over
	// all clients (bursts of twice as many pass); searches past it rank
	// lexically. It bounds what clients can cost at the service. Each
	// caller (principal, or session when anonymous) may use a quarter of
	// it (at least one a second), so that one client searching hard does
	// not make everyone's searches lexical. Default: 20.
	QueryRate float64
	// BatchSize is the number of tool texts per request. Default: 32.
	BatchSize int
	// HTTPClient sends the requests. Default: a client of its own that
	// follows no redirect (the headers carry credentials meant for URL
	// alone).
	HTTPClient *http.Client
}

// Limits on what the embedding service may send back.
const (
	maxEmbeddingBody = 32 << 20
	maxDimensions    = 8192
)

// errBreakerOpen is returned without a request while the service is
// considered down.
var errBreakerOpen = errors.New("embedding service unavailable (backing off)")

// embedClient calls an embeddings endpoint, behind a circuit breaker:
// after a failure no request is made until a backoff has passed, and then
// a single trial request decides whether the service is back.
type embedClient struct {
	opts    EmbeddingOptions
	client  *http.Client
	breaker breaker
}

func newEmbedClient(o EmbeddingOptions) *embedClient {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.SemanticWeight <= 0 || o.SemanticWeight > 1 {
		o.SemanticWeight = 0.5
	}
	if o.QueryRate <= 0 {
		o.QueryRate = 20
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 32
	}
	c := &embedClient{opts: o, client: o.HTTPClient}
	if c.client == nil {
		c.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	c.breaker.now = time.Now
	return c
}

type embedRequest struct {
	Model          string   `json:"model"`
	Input          []string `json:"input"`
	EncodingFormat string   `json:"encoding_format"`
}

type embedResponse struct {
	Data []struct {
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	} `json:"data"`
}

// embed returns one unit-length vector per text, or an error: the service
// being down, slow (past the timeout), or answering anything but one valid
// vector of one dimension per text. A failure opens the breaker.
func (c *embedClient) embed(ctx context.Context, texts []string) ([][]float32, error) {
	if !c.breaker.allow() {
		return nil, errBreakerOpen
	}
	vecs, err := c.post(ctx, texts)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
			c.breaker.abandon() // the caller left: says nothing about the service
			return nil, err
		}
		c.breaker.failure()
		return nil, err
	}
	c.breaker.success()
	return vecs, nil
}

func (c *embedClient) post(ctx context.Context, texts []string) ([][]float32, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	body, err := json.Marshal(embedRequest{Model: c.opts.Model, Input: texts, EncodingFormat: "float"})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.opts.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range c.opts.Headers {
		req.Header.Set(k, v)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("embedding request: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("embedding service answered %s", resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxEmbeddingBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the embedding answer: %w", err)
	}
	if len(raw) > maxEmbeddingBody {
		return nil, fmt.Errorf("embedding answer over %d bytes", maxEmbeddingBody)
	}
	var out embedResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("embedding answer: %w", err)
	}
	return vectorsOf(out, len(texts))
}

// vectorsOf checks an answer: one vector per input, all of one dimension,
// finite and not zero; each is scaled to unit length.
func vectorsOf(out embedResponse, n int) ([][]float32, error) {
	if len(out.Data) != n {
		return nil, fmt.Errorf("embedding answer has %d vectors for %d inputs", len(out.Data), n)
	}
	vecs := make([][]float32, n)
	for _, d := range out.Data {
		if d.Index < 0 || d.Index >= n || vecs[d.Index] != nil {
			return nil, fmt.Errorf("embedding answer has a bad or repeated index %d", d.Index)
		}
		if len(d.Embedding) == 0 || len(d.Embedding) > maxDimensions || len(d.Embedding) != len(out.Data[0].Embedding) {
			return nil, fmt.Errorf("embedding answer has a vector of %d dimensions", len(d.Embedding))
		}
		v, ok := unit(d.Embedding)
		if !ok {
			return nil, errors.New("embedding answer has a zero or non-finite vector")
		}
		vecs[d.Index] = v
	}
	return vecs, nil
}

// unit returns v scaled to length 1, or false if it is zero or not finite.
func unit(v []float64) ([]float32, bool) {
	var sum float64
	for _, x := range v {
		sum += x * x
	}
	norm := math.Sqrt(sum)
	if norm == 0 || math.IsInf(norm, 0) || math.IsNaN(norm) {
		return nil, false
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x / norm)
	}
	return out, true
}

// Breaker timing: the first failure stops requests for breakerMin, each
// failed trial doubles the pause, up to breakerMax.
const (
	breakerMin = time.Second
	breakerMax = 2 * time.Minute
)

// breaker is a circuit breaker with exponential backoff. Closed, every
// request goes; after a failure it opens: no request until the backoff has
// passed; then one trial request goes (others still wait), and its outcome
// closes the breaker or opens it again for twice as long.
type breaker struct {
	now func() time.Time

	mu        sync.Mutex // guards the fields below
	open      bool
	until     time.Time
	backoff   time.Duration
	trial     bool // a trial request is under way
	failures  int  // consecutive failures, for logs
	lastState bool // open, as last reported by changed
}

func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return true
	}
	if b.trial || b.now().Before(b.until) {
		return false
	}
	b.trial = true
	return true
}

func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open, b.trial, b.backoff, b.failures = false, false, 0, 0
}

func (b *breaker) failure() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	switch {
	case b.backoff == 0:
		b.backoff = breakerMin
	case b.open:
		b.backoff = min(2*b.backoff, breakerMax)
	}
	b.open, b.trial = true, false
	b.until = b.now().Add(b.backoff)
}

// abandon ends a trial that was cancelled by its caller.
func (b *breaker) abandon() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trial = false
}

// wait is how long until a request may go: 0 when closed, the rest of the
// backoff when open, a short while when a trial is under way.
func (b *breaker) wait() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !b.open:
		return 0
	case b.trial:
		return 100 * time.Millisecond
	}
	return max(0, b.until.Sub(b.now()))
}

// changed reports whether the breaker opened or closed since the last
// call, and its state: for one log line per change, not per search.
func (b *breaker) changed() (changed, open bool, failures int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	changed = b.open != b.lastState
	b.lastState = b.open
	return changed, b.open, b.failures
}
