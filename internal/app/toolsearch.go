package app

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/vmcp-dev/vmcp/internal/config"
	"github.com/vmcp-dev/vmcp/internal/toolsearch"
)

// toolSearch builds search mode from config.toolSearch: nil when it is
// off. The searcher's background embedder runs from Start.
func (a *App) toolSearch() (*toolsearch.Mode, *toolsearch.Searcher, error) {
	ts := a.cfg.Config.ToolSearch
	if !ts.Enabled {
		return nil, nil, nil
	}
	opts := &toolsearch.Options{Logger: a.logger.With("component", "toolsearch")}
	if e := ts.Embedding; e != nil {
		headers := map[string]string{}
		for i, h := range e.Headers {
			v := h.Value
			if h.ValueSecretRef != nil {
				secret, err := h.ValueSecretRef.Resolve()
				if err != nil {
					return nil, nil, fmt.Errorf("config.toolSearch.embedding.headers[%d]: %w", i, err)
				}
				v = h.ValuePrefix + string(secret)
			}
			headers[h.Name] = v
		}
		opts.Embedding = &toolsearch.EmbeddingOptions{URL: e.URL, Model: e.Model, Headers: headers,
			Timeout: e.Timeout.D(), SemanticWeight: e.SemanticWeight, QueryRate: e.QueryRate}
		opts.Cache = a.embeddingCache(e)
	}
	s := toolsearch.New(opts)
	return toolsearch.NewMode(s, &toolsearch.ModeOptions{AlwaysListed: ts.AlwaysList, DefaultLimit: ts.DefaultLimit, MaxLimit: ts.MaxLimit}), s, nil
}

// embeddingCache opens the file that keeps tool embeddings across
// restarts, or returns nil (memory only) with a log line when it cannot.
func (a *App) embeddingCache(e *config.Embedding) toolsearch.Cache {
	path := e.CacheFile
	if path == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			a.logger.Warn("no cache directory for tool embeddings: they are kept in memory only", "error", err)
			return nil
		}
		path = filepath.Join(dir, "vmcp", a.cfg.Name, "embeddings")
	}
	c, err := toolsearch.OpenFileCache(path, 0)
	if err != nil {
		a.logger.Warn("the tool embedding cache cannot be used: embeddings are kept in memory only", "error", err)
		return nil
	}
	return c
}
