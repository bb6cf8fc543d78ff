// Package memory is an in-process [authserver.Store]. It keeps copies of
// what it is given, so callers cannot change stored values by accident, and
// forgets entries once they expire.
package memory

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/mcpsession"
	"github.com/vmcp-dev/vmcp/internal/store/lease"
)

// Store is an in-memory authorization server store.
type Store struct {
	now func() time.Time

	mu       sync.Mutex // guards the fields below
	writes   int        // token, grant and pending writes since the last sweep
	clients  map[string]clientEntry
	tokens   map[authserver.TokenKind]map[string]*authserver.TokenRecord
	families map[authserver.TokenKind]map[string]map[string]bool // request ID -> signatures
	grants   map[string]grantEntry
	pending  map[string]*pendingEntry
	// pendingByExpiry orders pending entries by expiry, so expired ones
	// are forgotten in O(log n) each; perClient counts live pending
	// entries by client.
	pendingByExpiry pendingHeap
	perClient       map[string]int
	secrets         map[string][]byte
	sessions        map[string]sessionEntry // by mcpsession.Key

	locks    lease.Table
	watchers mcpsession.Watchers
}

// sessionEntry is a stored MCP session record.
type sessionEntry struct {
	r       []byte
	version int64
	exp     time.Time
}

// clientEntry is a stored client with what eviction and expiry need.
type clientEntry struct {
	c       []byte
	created time.Time
	used    bool
	exp     time.Time // zero: never
}

func (e clientEntry) expired(now time.Time) bool { return !e.exp.IsZero() && !now.Before(e.exp) }

// grantEntry is a stored grant, and whether it is revoked for the
// per-request check that needs only that.
type grantEntry struct {
	g       []byte
	revoked bool
	version int64
	exp     time.Time // zero: never
}

func (e grantEntry) expired(now time.Time) bool { return !e.exp.IsZero() && !now.Before(e.exp) }

type pendingEntry struct {
	state  string
	client string
	p      []byte
	exp    time.Time
	index  int // in pendingByExpiry
}

// pendingHeap is a min-heap of pending entries by expiry.
type pendingHeap []*pendingEntry

func (h pendingHeap) Len() int           { return len(h) }
func (h pendingHeap) Less(i, j int) bool { return h[i].exp.Before(h[j].exp) }
func (h pendingHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *pendingHeap) Push(x any) {
	e := x.(*pendingEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *pendingHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

var (
	_ authserver.Store = (*Store)(nil)
	_ mcpsession.Store = (*Store)(nil)
)

// New returns an empty store. now is the clock (nil: time.Now).
func New(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{
		now:       now,
		clients:   map[string]clientEntry{},
		tokens:    map[authserver.TokenKind]map[string]*authserver.TokenRecord{},
		families:  map[authserver.TokenKind]map[string]map[string]bool{},
		grants:    map[string]grantEntry{},
		pending:   map[string]*pendingEntry{},
		perClient: map[string]int{},
		secrets:   map[string][]byte{},
		sessions:  map[string]sessionEntry{},
	}
}

// copyJSON deep-copies v through JSON, the way a networked store would.
func copyJSON[T any](v *T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("memory store: encode: %w", err)
	}
	return b, nil
}

func decode[T any](b []byte) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("memory store: decode: %w", err)
	}
	return v, nil
}

// CreateClient stores c; it fails if the ID is taken. With max > 0 and max
// live clients stored, it first forgets the oldest never-used
// registration, or fails with [authserver.ErrLimit] if there is none.
func (s *Store) CreateClient(_ context.Context, c *authserver.Client, max int) error {
	b, err := copyJSON(c)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if e, ok := s.clients[c.ID]; ok && !e.expired(now) {
		return fmt.Errorf("client %q already exists", c.ID)
	}
	if max > 0 && len(s.clients) >= max {
		s.sweepClientsLocked(now)
		if len(s.clients) >= max && !s.evictUnusedClientLocked() {
			return authserver.ErrLimit
		}
	}
	s.clients[c.ID] = clientEntry{c: b, created: c.CreatedAt, used: !c.UsedAt.IsZero(), exp: c.ExpiresAt}
	return nil
}

func (s *Store) sweepClientsLocked(now time.Time) {
	for id, e := range s.clients {
		if e.expired(now) {
			delete(s.clients, id)
		}
	}
}

// evictUnusedClientLocked forgets the never-used registration created
// first; false if there is none.
func (s *Store) evictUnusedClientLocked() bool {
	victim, found := "", false
	var created time.Time
	for id, e := range s.clients {
		if e.used || e.exp.IsZero() {
			continue
		}
		if !found || e.created.Before(created) {
			victim, created, found = id, e.created, true
		}
	}
	if found {
		delete(s.clients, victim)
	}
	return found
}

// GetClient returns the client with id, unless it expired.
func (s *Store) GetClient(_ context.Context, id string) (*authserver.Client, error) {
	s.mu.Lock()
	e, ok := s.clients[id]
	if ok && e.expired(s.now()) {
		delete(s.clients, id)
		ok = false
	}
	s.mu.Unlock()
	if !ok {
		return nil, authserver.ErrNotFound
	}
	return decode[authserver.Client](e.c)
}

// TouchClient records a use of the client with id.
func (s *Store) TouchClient(_ context.Context, id string, usedAt, expiresAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.clients[id]
	if !ok || e.expired(s.now()) {
		return authserver.ErrNotFound
	}
	c, err := decode[authserver.Client](e.c)
	if err != nil {
		return err
	}
	c.UsedAt, c.ExpiresAt = usedAt, expiresAt
	b, err := copyJSON(c)
	if err != nil {
		return err
	}
	e.c, e.used, e.exp = b, !usedAt.IsZero(), expiresAt
	s.clients[id] = e
	return nil
}

// CreateToken stores r under its signature.
func (s *Store) CreateToken(_ context.Context, kind authserver.TokenKind, r *authserver.TokenRecord) error {
	c := *r
	c.Request = append([]byte(nil), r.Request...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wroteLocked()
	if s.tokens[kind] == nil {
		s.tokens[kind] = map[string]*authserver.TokenRecord{}
		s.families[kind] = map[string]map[string]bool{}
	}
	s.tokens[kind][r.Signature] = &c
	fam := s.families[kind][r.RequestID]
	if fam == nil {
		fam = map[string]bool{}
		s.families[kind][r.RequestID] = fam
	}
	fam[r.Signature] = true
	return nil
}

// liveLocked returns the record of signature unless it is missing or
// expired (then forgotten).
func (s *Store) liveLocked(kind authserver.TokenKind, signature string) (*authserver.TokenRecord, bool) {
	r, ok := s.tokens[kind][signature]
	if !ok {
		return nil, false
	}
	if !r.ExpiresAt.IsZero() && s.now().After(r.ExpiresAt) {
		s.deleteLocked(kind, r)
		return nil, false
	}
	return r, true
}

// GetToken returns the record of signature, active or not, unless expired.
func (s *Store) GetToken(_ context.Context, kind authserver.TokenKind, signature string) (*authserver.TokenRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.liveLocked(kind, signature)
	if !ok {
		return nil, authserver.ErrNotFound
	}
	c := *r
	c.Request = append([]byte(nil), r.Request...)
	return &c, nil
}

// TokenActive reports whether the record of signature is active.
func (s *Store) TokenActive(_ context.Context, kind authserver.TokenKind, signature string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.liveLocked(kind, signature)
	if !ok {
		return false, authserver.ErrNotFound
	}
	return r.Active, nil
}

// sweepEvery is how many writes pass between sweeps of expired tokens,
// grants and pending logins, so that entries nobody reads again do not
// pile up.
const sweepEvery = 1024

// wroteLocked counts a write and sweeps every sweepEvery writes.
func (s *Store) wroteLocked() {
	if s.writes++; s.writes < sweepEvery {
		return
	}
	s.writes = 0
	now := s.now()
	for kind, m := range s.tokens {
		for _, r := range m {
			if !r.ExpiresAt.IsZero() && now.After(r.ExpiresAt) {
				s.deleteLocked(kind, r)
			}
		}
	}
	for k, e := range s.grants {
		if e.expired(now) {
			delete(s.grants, k)
		}
	}
	s.sweepClientsLocked(now)
	s.sweepPendingLocked(now)
	for k, e := range s.sessions {
		if !now.Before(e.exp) {
			delete(s.sessions, k)
		}
	}
}

func (s *Store) deleteLocked(kind authserver.TokenKind, r *authserver.TokenRecord) {
	delete(s.tokens[kind], r.Signature)
	if fam := s.families[kind][r.RequestID]; fam != nil {
		delete(fam, r.Signature)
		if len(fam) == 0 {
			delete(s.families[kind], r.RequestID)
		}
	}
}

// DeleteToken removes the record of signature, if any.
func (s *Store) DeleteToken(_ context.Context, kind authserver.TokenKind, signature string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.tokens[kind][signature]; ok {
		s.deleteLocked(kind, r)
	}
	return nil
}

// DeactivateToken marks the active record of signature inactive.
func (s *Store) DeactivateToken(_ context.Context, kind authserver.TokenKind, signature string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.liveLocked(kind, signature)
	switch {
	case !ok:
		return authserver.ErrNotFound
	case !r.Active:
		return authserver.ErrInactive
	}
	r.Active = false
	return nil
}

// DeactivateFamily marks every record of the family inactive.
func (s *Store) DeactivateFamily(_ context.Context, kind authserver.TokenKind, requestID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sig := range s.families[kind][requestID] {
		s.tokens[kind][sig].Active = false
	}
	return nil
}

// DeleteFamily removes every record of the family.
func (s *Store) DeleteFamily(_ context.Context, kind authserver.TokenKind, requestID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sig := range s.families[kind][requestID] {
		delete(s.tokens[kind], sig)
	}
	delete(s.families[kind], requestID)
	return nil
}

// PutGrant stores g if the stored grant is the version g.Version.
func (s *Store) PutGrant(_ context.Context, g *authserver.Grant) error {
	c := *g
	c.Version++
	b, err := copyJSON(&c)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wroteLocked()
	old, ok := s.grants[g.ID]
	if ok && old.expired(s.now()) {
		ok = false
	}
	if (ok && old.version != g.Version) || (!ok && g.Version != 0) {
		return authserver.ErrConflict
	}
	s.grants[g.ID] = grantEntry{g: b, revoked: g.Revoked, version: c.Version, exp: g.ExpiresAt}
	g.Version = c.Version
	return nil
}

// grant returns the live entry of id.
func (s *Store) grant(id string) (grantEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.grants[id]
	if ok && e.expired(s.now()) {
		delete(s.grants, id)
		return grantEntry{}, false
	}
	return e, ok
}

// GetGrant returns the grant with id.
func (s *Store) GetGrant(_ context.Context, id string) (*authserver.Grant, error) {
	e, ok := s.grant(id)
	if !ok {
		return nil, authserver.ErrNotFound
	}
	return decode[authserver.Grant](e.g)
}

// GrantRevoked reports whether the grant with id is revoked.
func (s *Store) GrantRevoked(_ context.Context, id string) (bool, error) {
	e, ok := s.grant(id)
	if !ok {
		return false, authserver.ErrNotFound
	}
	return e.revoked, nil
}

// DeleteGrant removes the grant with id.
func (s *Store) DeleteGrant(_ context.Context, id string) error {
	s.mu.Lock()
	delete(s.grants, id)
	s.mu.Unlock()
	return nil
}

// LockGrant takes the lease on id for owner.
func (s *Store) LockGrant(_ context.Context, id, owner string, ttl time.Duration) (bool, error) {
	return s.locks.Acquire(id, owner, ttl, s.now()), nil
}

// UnlockGrant ends owner's lease on id.
func (s *Store) UnlockGrant(_ context.Context, id, owner string) error {
	s.locks.Release(id, owner)
	return nil
}

// GetSecret returns the secret stored under name.
func (s *Store) GetSecret(_ context.Context, name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.secrets[name]
	if !ok {
		return nil, authserver.ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

// InitSecret stores value under name unless one is stored, and returns the
// stored one.
func (s *Store) InitSecret(_ context.Context, name string, value []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.secrets[name]; !ok {
		s.secrets[name] = append([]byte(nil), value...)
	}
	return append([]byte(nil), s.secrets[name]...), nil
}

// PutPending stores p under state for ttl, within limits.
func (s *Store) PutPending(_ context.Context, state string, p *authserver.Pending, ttl time.Duration, limits authserver.PendingLimits) error {
	b, err := copyJSON(p)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wroteLocked()
	now := s.now()
	s.sweepPendingLocked(now)
	client := p.Request.ClientID
	old := s.pending[state]
	if old != nil {
		s.removePendingLocked(old) // replaced: it does not count against the limits
	}
	switch {
	case limits.Total > 0 && len(s.pending) >= limits.Total:
		err = authserver.ErrLimit
	case limits.PerClient > 0 && s.perClient[client] >= limits.PerClient:
		err = authserver.ErrClientLimit
	}
	if err != nil {
		if old != nil {
			s.addPendingLocked(old)
		}
		return err
	}
	s.addPendingLocked(&pendingEntry{state: state, client: client, p: b, exp: now.Add(ttl)})
	return nil
}

func (s *Store) addPendingLocked(e *pendingEntry) {
	s.pending[e.state] = e
	s.perClient[e.client]++
	heap.Push(&s.pendingByExpiry, e)
}

func (s *Store) removePendingLocked(e *pendingEntry) {
	delete(s.pending, e.state)
	if s.perClient[e.client]--; s.perClient[e.client] <= 0 {
		delete(s.perClient, e.client)
	}
	heap.Remove(&s.pendingByExpiry, e.index)
}

// sweepPendingLocked forgets the pending entries expired at now.
func (s *Store) sweepPendingLocked(now time.Time) {
	for len(s.pendingByExpiry) > 0 && !now.Before(s.pendingByExpiry[0].exp) {
		s.removePendingLocked(s.pendingByExpiry[0])
	}
}

// TakePending returns and forgets the entry of state.
func (s *Store) TakePending(_ context.Context, state string) (*authserver.Pending, error) {
	s.mu.Lock()
	e, ok := s.pending[state]
	if ok {
		s.removePendingLocked(e)
	}
	s.mu.Unlock()
	if !ok || !s.now().Before(e.exp) {
		return nil, authserver.ErrNotFound
	}
	return decode[authserver.Pending](e.p)
}

// Stats are the number of entries a [Store] holds, and the bytes of the
// entries that strangers can make it hold (registrations and pending
// logins), for abuse tests and capacity planning.
type Stats struct {
	Clients, Pending, Grants, Tokens int
	ClientBytes, PendingBytes        int
}

// Stats counts what the store holds now, expired entries not yet
// forgotten included.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Clients: len(s.clients), Pending: len(s.pending), Grants: len(s.grants)}
	for _, e := range s.clients {
		st.ClientBytes += len(e.c)
	}
	for _, e := range s.pending {
		st.PendingBytes += len(e.p)
	}
	for _, m := range s.tokens {
		st.Tokens += len(m)
	}
	return st
}

// PutSession stores r if the stored version is r.Version.
func (s *Store) PutSession(_ context.Context, r *mcpsession.Record) error {
	b, err := copyJSON(r)
	if err != nil {
		return err
	}
	k := mcpsession.Key(r.ID)
	s.mu.Lock()
	now := s.now()
	e, ok := s.sessions[k]
	if ok && !now.Before(e.exp) {
		delete(s.sessions, k)
		ok = false
	}
	if ok && e.version != r.Version || !ok && r.Version != 0 {
		s.mu.Unlock()
		return mcpsession.ErrConflict
	}
	r.Version++
	s.sessions[k] = sessionEntry{r: b, version: r.Version, exp: r.ExpiresAt}
	s.wroteLocked()
	s.mu.Unlock()
	s.watchers.Notify(mcpsession.Change{Key: k, Version: r.Version})
	return nil
}

// GetSession returns the live record of id.
func (s *Store) GetSession(_ context.Context, id string) (*mcpsession.Record, error) {
	s.mu.Lock()
	e, ok := s.sessions[mcpsession.Key(id)]
	live := ok && s.now().Before(e.exp)
	s.mu.Unlock()
	if !live {
		return nil, mcpsession.ErrNotFound
	}
	r, err := decode[mcpsession.Record](e.r)
	if err != nil {
		return nil, err
	}
	r.ID, r.Version, r.ExpiresAt = id, e.version, e.exp
	return r, nil
}

// TouchSession moves a live record's expiry.
func (s *Store) TouchSession(_ context.Context, id string, expiresAt time.Time) error {
	k := mcpsession.Key(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.sessions[k]
	if !ok || !s.now().Before(e.exp) {
		return mcpsession.ErrNotFound
	}
	e.exp = expiresAt
	s.sessions[k] = e
	return nil
}

// DeleteSession forgets the record of id.
func (s *Store) DeleteSession(_ context.Context, id string) error {
	k := mcpsession.Key(id)
	s.mu.Lock()
	delete(s.sessions, k)
	s.mu.Unlock()
	s.watchers.Notify(mcpsession.Change{Key: k})
	return nil
}

// WatchSessions calls f with every change of a session record.
func (s *Store) WatchSessions(f func(mcpsession.Change)) (stop func()) { return s.watchers.Add(f) }
