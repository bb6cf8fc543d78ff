package authserver

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestRegistrationLimiterFull: when the limiter remembers as many addresses
// as it may, a new address takes the place of the least recently seen one;
// an address in use keeps its limit. (The limiters used to be reset all at
// once: an attacker with 10,001 addresses reset every address's limit.)
func TestRegistrationLimiterFull(t *testing.T) {
	t.Parallel()
	start := time.Now()
	l := registrationLimiter{now: func() time.Time { return start }} // no limit refills during the test
	from := func(host string) *http.Request { return &http.Request{RemoteAddr: host + ":4000"} }
	attacker := from("203.0.113.7")
	for l.allow(attacker) {
	}
	for i := range maxRegistrationLimiters - 1 {
		if !l.allow(from(fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255))) {
			t.Fatalf("address %d refused at its first registration", i)
		}
	}
	if l.allow(attacker) {
		t.Fatal("the attacker's limit was lifted before the limiter was full")
	}
	for i := range 10 {
		if !l.allow(from(fmt.Sprintf("192.0.2.%d", i))) {
			t.Fatalf("new address %d refused at its first registration", i)
		}
	}
	if l.allow(attacker) {
		t.Error("new addresses reset the limit of an address in use")
	}
}
