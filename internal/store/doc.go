// Package store holds the implementations of the authorization server's
// storage interfaces ([authserver.Store]): memory/ for a single process,
// and storetest/, the suite every implementation must pass.
package store
