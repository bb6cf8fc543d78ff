package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/mcpsession"
)

// MCP sessions of one process survive its restart: records in the
// sessions bucket, by the hash of their ID. The watchers are this
// process's own (one process per state directory).

var _ mcpsession.Store = (*Store)(nil)

// sessionRec is a stored session: version (8 bytes), expiry (8), then the
// sealed record.
type sessionRec struct {
	version int64
	exp     time.Time
	sealed  []byte
}

func (r sessionRec) encode() []byte {
	b := make([]byte, 16, 16+len(r.sealed))
	binary.BigEndian.PutUint64(b, uint64(r.version))
	putTime(b[8:], r.exp)
	return append(b, r.sealed...)
}

func decodeSession(v []byte) (sessionRec, error) {
	if len(v) < 16 {
		return sessionRec{}, errors.New("bolt: short session record")
	}
	return sessionRec{version: int64(binary.BigEndian.Uint64(v)), exp: getTime(v[8:]), sealed: v[16:]}, nil
}

// sessionFail turns an error of the store into the session store's.
func sessionFail(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, authserver.ErrUnavailable):
		return fmt.Errorf("%w: %w", mcpsession.ErrUnavailable, err)
	}
	return err
}

// liveSession reads the unexpired record under k.
func (s *Store) liveSession(tx *bbolt.Tx, k []byte) (sessionRec, error) {
	v := tx.Bucket(bSessions).Get(k)
	if v == nil {
		return sessionRec{}, mcpsession.ErrNotFound
	}
	r, err := decodeSession(v)
	if err != nil {
		return sessionRec{}, err
	}
	if !s.now().Before(r.exp) {
		return sessionRec{}, mcpsession.ErrNotFound
	}
	return r, nil
}

// PutSession stores r if the stored version is r.Version.
func (s *Store) PutSession(ctx context.Context, r *mcpsession.Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	h := mcpsession.Key(r.ID)
	k := []byte(h)
	rec := sessionRec{version: r.Version + 1, exp: r.ExpiresAt, sealed: s.keys.Seal(b, sealContext("session", k))}
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		old, err := s.liveSession(tx, k)
		switch {
		case errors.Is(err, mcpsession.ErrNotFound):
			if r.Version != 0 {
				return mcpsession.ErrConflict
			}
		case err != nil:
			return err
		case old.version != r.Version:
			return mcpsession.ErrConflict
		}
		return tx.Bucket(bSessions).Put(k, rec.encode())
	})
	if err != nil {
		return sessionFail(err)
	}
	r.Version = rec.version
	s.watchers.Notify(mcpsession.Change{Key: h, Version: r.Version})
	return nil
}

// GetSession returns the live record of id.
func (s *Store) GetSession(ctx context.Context, id string) (*mcpsession.Record, error) {
	k := []byte(mcpsession.Key(id))
	var out *mcpsession.Record
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		rec, err := s.liveSession(tx, k)
		if err != nil {
			return err
		}
		if out, err = openJSON[mcpsession.Record](s.keys, rec.sealed, sealContext("session", k)); err != nil {
			return err
		}
		out.ID, out.Version, out.ExpiresAt = id, rec.version, rec.exp
		return nil
	})
	if err != nil {
		return nil, sessionFail(err)
	}
	return out, nil
}

// TouchSession moves a live record's expiry.
func (s *Store) TouchSession(ctx context.Context, id string, expiresAt time.Time) error {
	k := []byte(mcpsession.Key(id))
	return sessionFail(s.update(ctx, func(tx *bbolt.Tx) error {
		rec, err := s.liveSession(tx, k)
		if err != nil {
			return err
		}
		rec.exp = expiresAt
		return tx.Bucket(bSessions).Put(k, rec.encode())
	}))
}

// DeleteSession forgets the record of id.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	h := mcpsession.Key(id)
	err := s.update(ctx, func(tx *bbolt.Tx) error { return tx.Bucket(bSessions).Delete([]byte(h)) })
	if err != nil {
		return sessionFail(err)
	}
	s.watchers.Notify(mcpsession.Change{Key: h})
	return nil
}

// WatchSessions calls f with every change of a session record.
func (s *Store) WatchSessions(f func(mcpsession.Change)) (stop func()) { return s.watchers.Add(f) }
