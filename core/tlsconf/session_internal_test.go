package tlsconf

import (
	"crypto/tls"
	"fmt"
	"sync"
	"testing"
)

func TestSessionCacheLRU(t *testing.T) {
	c := NewSessionCache(2)
	a, b, d := new(tls.ClientSessionState), new(tls.ClientSessionState), new(tls.ClientSessionState)
	c.put("a", a)
	c.put("b", b)
	if got, ok := c.get("a"); !ok || got != a { // a is now the most recent
		t.Fatalf("get a = %p, %v", got, ok)
	}
	c.put("d", d) // evicts b, the least recently used
	if _, ok := c.get("b"); ok {
		t.Fatal("b survived eviction")
	}
	if got, ok := c.get("a"); !ok || got != a {
		t.Fatalf("a evicted instead of b: %p, %v", got, ok)
	}
	if c.Len() != 2 {
		t.Fatalf("Len = %d, want the capacity 2", c.Len())
	}
	// Replacing keeps one entry; nil removes it (crypto/tls drops unusable sessions so).
	c.put("a", b)
	if got, _ := c.get("a"); got != b || c.Len() != 2 {
		t.Fatalf("after replace: %p, Len %d", got, c.Len())
	}
	c.put("a", nil)
	if _, ok := c.get("a"); ok || c.Len() != 1 {
		t.Fatalf("after put nil: found %v, Len %d", ok, c.Len())
	}
	c.put("absent", nil)
	if c.Len() != 1 {
		t.Fatalf("put nil of an absent key added it: Len %d", c.Len())
	}
}

func TestSessionCacheDefaultCapacity(t *testing.T) {
	c := NewSessionCache(0)
	for i := range DefaultSessionCacheCapacity + 5 {
		c.put(fmt.Sprint(i), new(tls.ClientSessionState))
	}
	if c.Len() != DefaultSessionCacheCapacity {
		t.Fatalf("Len = %d, want %d", c.Len(), DefaultSessionCacheCapacity)
	}
}

func TestSessionCacheConcurrent(t *testing.T) {
	c := NewSessionCache(8)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			v := sessionView{cache: c, key: fmt.Sprint("k", g%3)}
			for i := range 500 {
				if i%7 == 0 {
					v.Put("ignored", nil)
					continue
				}
				v.Put("ignored", new(tls.ClientSessionState))
				v.Get("ignored")
				_ = c.Len()
			}
		})
	}
	wg.Wait()
	if c.Len() > 3 {
		t.Fatalf("Len = %d with 3 keys", c.Len())
	}
}

func TestSessionKey(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := Certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	noLeaf := cert
	noLeaf.Leaf = nil
	pin := "ed25519:" + fmt.Sprintf("%064x", 1)
	if got, want := sessionKey(pin, &cert), pin+" "+Fingerprint(key); got != want {
		t.Fatalf("sessionKey = %q, want %q", got, want)
	}
	if got, want := sessionKey(pin, &noLeaf), sessionKey(pin, &cert); got != want {
		t.Fatalf("without Leaf: %q, want %q", got, want)
	}
	if got := sessionKey(pin, nil); got != pin+" -" {
		t.Fatalf("no certificate: %q", got)
	}
}
