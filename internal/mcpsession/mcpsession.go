// Package mcpsession is what a store keeps of a 2025-11-25 MCP session so
// that any replica can serve it: the [Record] (its owner, the negotiated
// protocol version, the client's initialize parameters, its log level and
// resource subscriptions), the [Store] interface the stores implement, and
// the changes they announce to every replica ([Change]). A session ID
// alone grants nothing: every replica checks the record's owner. Knows
// nothing of HTTP, the go-sdk or tokens.
package mcpsession

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"time"
)

// Record is a session as stores keep it.
type Record struct {
	// ID is the Mcp-Session-Id. Stores key the record by [Key] of it and
	// do not keep the ID itself.
	ID string `json:"-"`
	// Owner is the identity key of the user who created the session
	// ("" for an anonymous one): only that user may use it.
	Owner string `json:"owner"`
	// ProtocolVersion is the negotiated protocol revision.
	ProtocolVersion string `json:"protocolVersion"`
	// Initialize are the client's initialize parameters as the go-sdk
	// encodes them (capabilities, client info).
	Initialize json.RawMessage `json:"initialize"`
	// LogLevel is what logging/setLevel set ("" for none).
	LogLevel string `json:"logLevel,omitempty"`
	// Subscriptions are the resource URIs (as the client knows them) the
	// session subscribed to.
	Subscriptions []string `json:"subscriptions,omitempty"`
	// Created is when the session began; ExpiresAt is when the store
	// forgets it unless it is touched again.
	Created   time.Time `json:"created"`
	ExpiresAt time.Time `json:"expiresAt"`
	// Version is the stored version, set by the store (0: not stored).
	Version int64 `json:"-"`
}

// Key is the store key of a session ID: a hash, so that the IDs are not
// readable from the store (nor from its change messages).
func Key(id string) string {
	sum := sha256.Sum256([]byte(id))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Change tells the watchers of a store that a session changed: Key (see
// [Key]) is its key and Version its new version, 0 if it ended. All says
// that changes may have been missed (the channel that carries them was
// lost for a while): every local copy may be stale.
type Change struct {
	Key     string
	Version int64
	All     bool
}

// Store keeps session records, shared by every replica on the store.
type Store interface {
	// PutSession stores r if the stored record is version r.Version (0:
	// none is stored, the ID is new), sets r.Version to the new version
	// (always r.Version+1) and announces the change; otherwise it stores nothing and returns
	// [ErrConflict]. The record lives until r.ExpiresAt.
	PutSession(ctx context.Context, r *Record) error
	// GetSession returns the record of a session ID; [ErrNotFound] if
	// there is none or it expired.
	GetSession(ctx context.Context, id string) (*Record, error)
	// TouchSession moves a live record's expiry to expiresAt (a use of the
	// session; not a change: no new version, no announcement).
	// [ErrNotFound] if it is gone.
	TouchSession(ctx context.Context, id string, expiresAt time.Time) error
	// DeleteSession forgets the record and announces it (nothing if it is
	// not stored).
	DeleteSession(ctx context.Context, id string) error
	// WatchSessions calls f with every change made through any handle on
	// the store, this one included, until stop is called. f is called
	// from one goroutine at a time and must not block.
	WatchSessions(f func(Change)) (stop func())
}

// Errors of a [Store]. Errors that are the store's own (down, slow)
// wrap ErrUnavailable.
var (
	ErrNotFound    = errors.New("session not found")
	ErrConflict    = errors.New("session changed concurrently")
	ErrUnavailable = errors.New("session storage unavailable")
)

// Update reads the record of id, applies change and puts it back,
// retrying from a fresh read when another replica changed it in between
// (at most a few times). It returns the stored record.
func Update(ctx context.Context, s Store, id string, change func(*Record)) (*Record, error) {
	for range 8 {
		r, err := s.GetSession(ctx, id)
		if err != nil {
			return nil, err
		}
		change(r)
		switch err := s.PutSession(ctx, r); {
		case err == nil:
			return r, nil
		case !errors.Is(err, ErrConflict):
			return nil, err
		}
	}
	return nil, ErrConflict
}

// Watchers is a set of WatchSessions callbacks, for stores to embed. The
// zero value is ready to use.
type Watchers struct {
	mu   sync.Mutex // guards the fields below; held while callbacks run, so they never run concurrently
	next int
	fs   map[int]func(Change)
}

// Add registers f; stop removes it (it must not be called from f).
func (w *Watchers) Add(f func(Change)) (stop func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fs == nil {
		w.fs = map[int]func(Change){}
	}
	id := w.next
	w.next++
	w.fs[id] = f
	return func() {
		w.mu.Lock()
		delete(w.fs, id)
		w.mu.Unlock()
	}
}

// Notify calls every registered callback with c.
func (w *Watchers) Notify(c Change) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.fs {
		f(c)
	}
}
