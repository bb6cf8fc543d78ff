package memory_test

import (
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/authserver"
	"github.com/vmcp-dev/vmcp/internal/store/memory"
	"github.com/vmcp-dev/vmcp/internal/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) authserver.Store { return memory.New(now) })
}

func TestShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T, now func() time.Time) (authserver.Store, authserver.Store) {
		s := memory.New(now)
		return s, s
	})
}

func BenchmarkStore(b *testing.B) { storetest.Bench(b, memory.New(nil)) }
