package config

import (
	"fmt"
	"net/url"
	"regexp"
	"time"
)

// ToolSearch configures search mode (docs/toolsearch.md): clients list two
// tools, find_tool and call_tool, instead of the whole catalog.
type ToolSearch struct {
	// Enabled turns search mode on. Default: false.
	Enabled bool `yaml:"enabled"`
	// AlwaysList names tools (advertised names) listed beside find_tool
	// and call_tool, to callers who may call them.
	AlwaysList []string `yaml:"alwaysList"`
	// DefaultLimit is the number of tools find_tool returns when the
	// client gives no limit. Default: 5.
	DefaultLimit int `yaml:"defaultLimit"`
	// MaxLimit bounds the limit a client may ask for. Default: 20; at
	// most 50.
	MaxLimit int `yaml:"maxLimit"`
	// Embedding adds semantic ranking with an OpenAI-compatible
	// embeddings endpoint. Absent: lexical ranking only.
	Embedding *Embedding `yaml:"embedding"`
}

// Embedding configures an OpenAI-compatible embeddings endpoint.
type Embedding struct {
	// URL is the endpoint vmcp POSTs to, such as
	// https://api.openai.com/v1/embeddings.
	URL string `yaml:"url"`
	// Model is the model name sent with every request.
	Model string `yaml:"model"`
	// Headers are sent with every request, such as an API key.
	Headers []EmbeddingHeader `yaml:"headers"`
	// Timeout bounds each request. Default: 2s.
	Timeout Duration `yaml:"timeout"`
	// SemanticWeight is the share of the semantic score in the hybrid
	// score, in (0, 1]. Default: 0.5.
	SemanticWeight float64 `yaml:"semanticWeight"`
	// QueryRate bounds the query embeddings requested per second, over
	// all clients; each client (principal, or session when anonymous)
	// may use a quarter of it. Searches past it rank lexically. Default:
	// 20.
	QueryRate float64 `yaml:"queryRate"`
	// CacheFile keeps tool embeddings across restarts. Default:
	// <user cache directory>/vmcp/<name>/embeddings.
	CacheFile string `yaml:"cacheFile"`
}

// EmbeddingHeader is one header sent to the embeddings endpoint: a plain
// value, or a secret (with an optional prefix such as "Bearer ").
type EmbeddingHeader struct {
	Name           string     `yaml:"name"`
	Value          string     `yaml:"value"`
	ValueSecretRef *SecretRef `yaml:"valueSecretRef"`
	ValuePrefix    string     `yaml:"valuePrefix"`
}

// Defaults of tool search.
const (
	DefaultToolSearchLimit    = 5
	DefaultToolSearchMaxLimit = 20
	MaxToolSearchLimit        = 50
	DefaultEmbeddingTimeout   = 2 * time.Second
	DefaultSemanticWeight     = 0.5
	DefaultQueryRate          = 20
)

var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

func (ts *ToolSearch) applyDefaults() {
	setDefault(&ts.DefaultLimit, DefaultToolSearchLimit)
	setDefault(&ts.MaxLimit, DefaultToolSearchMaxLimit)
	if e := ts.Embedding; e != nil {
		setDefault(&e.Timeout, Duration(DefaultEmbeddingTimeout))
		setDefault(&e.SemanticWeight, DefaultSemanticWeight)
		setDefault(&e.QueryRate, DefaultQueryRate)
	}
}

func (ts *ToolSearch) validate(v *validator) {
	const f = "config.toolSearch"
	for i, name := range ts.AlwaysList {
		if !ToolNameRE.MatchString(name) {
			v.add(fmt.Sprintf("%s.alwaysList[%d]", f, i), "%q is not a valid tool name", name)
		}
	}
	if ts.MaxLimit < 1 || ts.MaxLimit > MaxToolSearchLimit {
		v.add(f+".maxLimit", "must be between 1 and %d", MaxToolSearchLimit)
	}
	if ts.DefaultLimit < 1 || ts.DefaultLimit > ts.MaxLimit {
		v.add(f+".defaultLimit", "must be between 1 and maxLimit (%d)", ts.MaxLimit)
	}
	e := ts.Embedding
	if e == nil {
		return
	}
	ef := f + ".embedding"
	validateHTTPURL(v, ef+".url", e.URL)
	u, err := url.Parse(e.URL)
	if err == nil && u.User != nil {
		v.add(ef+".url", "must not carry credentials: send them in a header from a secret")
	}
	requireField(v, ef+".model", e.Model)
	if e.Timeout < 0 {
		v.add(ef+".timeout", "must not be negative")
	}
	if e.SemanticWeight <= 0 || e.SemanticWeight > 1 {
		v.add(ef+".semanticWeight", "must be above 0 and at most 1")
	}
	if e.QueryRate < 0 {
		v.add(ef+".queryRate", "must not be negative")
	}
	secrets := false
	for i, h := range e.Headers {
		hf := fmt.Sprintf("%s.headers[%d]", ef, i)
		if !headerNameRE.MatchString(h.Name) {
			v.add(hf+".name", "%q is not a valid header name", h.Name)
		}
		switch {
		case (h.Value == "") == (h.ValueSecretRef == nil):
			v.add(hf, "give exactly one of value, valueSecretRef")
		case h.ValueSecretRef != nil:
			secrets = true
			validateSecretRef(v, hf+".valueSecretRef", h.ValueSecretRef)
		case h.ValuePrefix != "":
			v.add(hf+".valuePrefix", "goes with valueSecretRef")
		}
	}
	if secrets && err == nil && u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		v.add(ef+".url", "secrets are sent only over https (or http to a loopback host)")
	}
}
