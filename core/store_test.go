package core_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/alknet/alknet/core"
)

func TestCredentialStore(t *testing.T) {
	ctx := t.Context()
	d1 := core.EncryptedData{KeyVersion: 1, Salt: []byte("salt"), IV: []byte("iv-iv-iv-iv-"), Data: []byte("sealed-1")}
	d2 := core.EncryptedData{KeyVersion: 2, IV: []byte("iv2"), Data: []byte("sealed-2")}

	var _ core.CredentialStore = (*core.InMemoryCredentialStore)(nil)
	s := core.NewInMemoryCredentialStore(nil)

	if got, ok := s.Get("github"); ok || !reflect.DeepEqual(got, core.EncryptedData{}) {
		t.Errorf("Get(missing) = %+v, %v; want zero, false", got, ok)
	}
	if err := s.Put(ctx, "github", d1); err != nil {
		t.Fatal(err)
	}
	if got, ok := s.Get("github"); !ok || !reflect.DeepEqual(got, d1) {
		t.Errorf("Get after Put = %+v, %v; want %+v", got, ok, d1)
	}
	if err := s.Put(ctx, "github", d2); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get("github"); !reflect.DeepEqual(got, d2) {
		t.Errorf("Put did not replace: %+v, want %+v", got, d2)
	}
	if err := s.Delete(ctx, "github"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("github"); ok {
		t.Error("Get after Delete found the entry")
	}
	if err := s.Delete(ctx, "never-there"); err != nil {
		t.Errorf("Delete(missing) = %v, want nil", err)
	}

	// Neither the value passed to Put nor the one Get returns shares memory with the store.
	in := core.EncryptedData{KeyVersion: 3, Salt: []byte("s"), IV: []byte("i"), Data: []byte("d")}
	if err := s.Put(ctx, "p", in); err != nil {
		t.Fatal(err)
	}
	in.Data[0] = 'X'
	got, _ := s.Get("p")
	got.Salt[0] = 'X'
	if again, _ := s.Get("p"); string(again.Data) != "d" || string(again.Salt) != "s" {
		t.Errorf("store shares memory with callers: %+v", again)
	}
}

func TestCredentialStoreSeeded(t *testing.T) {
	seed := map[string]core.EncryptedData{
		"github": {KeyVersion: 1, Data: []byte("a")},
		"gitea":  {KeyVersion: 2, Data: []byte("b")},
	}
	s := core.NewInMemoryCredentialStore(seed)
	seed["github"].Data[0] = 'X'
	delete(seed, "gitea")
	for name, want := range map[string]string{"github": "a", "gitea": "b"} {
		got, ok := s.Get(name)
		if !ok || string(got.Data) != want {
			t.Errorf("seeded Get(%q) = %+v, %v; want data %q", name, got, ok, want)
		}
	}

	var zero core.InMemoryCredentialStore
	if err := zero.Put(t.Context(), "x", core.EncryptedData{Data: []byte("z")}); err != nil {
		t.Fatalf("zero store Put: %v", err)
	}
	if got, ok := zero.Get("x"); !ok || string(got.Data) != "z" {
		t.Errorf("zero store Get = %+v, %v", got, ok)
	}
}

func TestEncryptedDataJSON(t *testing.T) {
	tests := []struct {
		name string
		in   core.EncryptedData
		want string
	}{
		{
			name: "all fields, padded standard base64",
			in:   core.EncryptedData{KeyVersion: 3, Salt: []byte{1, 2, 3}, IV: []byte{4, 5, 6}, Data: []byte{7, 8, 9, 10}},
			want: `{"key_version":3,"salt":"AQID","iv":"BAUG","data":"BwgJCg=="}`,
		},
		{
			name: "bytes that differ between std and url alphabets",
			in:   core.EncryptedData{KeyVersion: 1, Salt: []byte{0xfb, 0xff}, IV: []byte{0xff}, Data: []byte{0xfe}},
			want: `{"key_version":1,"salt":"+/8=","iv":"/w==","data":"/g=="}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("json = %s, want %s", b, tt.want)
			}
			var back core.EncryptedData
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tt.in) {
				t.Errorf("round trip = %+v, want %+v", back, tt.in)
			}
		})
	}
}

func TestStoreErrorNotFound(t *testing.T) {
	for _, kind := range []core.StoreErrorKind{core.StoreBackend, core.StoreNotFound, core.StoreSerialization} {
		err := error(&core.StoreError{Kind: kind, Detail: "d"})
		if got, want := errors.Is(err, core.ErrNotFound), kind == core.StoreNotFound; got != want {
			t.Errorf("kind %d: errors.Is(ErrNotFound) = %v, want %v", kind, got, want)
		}
	}
}

func peer(id string, fp byte, enabled bool) core.PeerEntry {
	return core.PeerEntry{PeerID: id, Fingerprints: []string{fpOf(fp)}, Scopes: []string{"s-" + id}, Enabled: enabled}
}

func TestInMemoryIdentityStore(t *testing.T) {
	ctx := t.Context()
	var _ core.IdentityStore = (*core.InMemoryIdentityStore)(nil)
	s := core.NewInMemoryIdentityStore(peer("alice", 1, true), peer("bob", 2, true))

	resolvesTo := func(fp byte) string {
		id, ok := s.ResolveFromFingerprint(fpOf(fp))
		if !ok {
			return ""
		}
		return id.ID
	}

	t.Run("seeded", func(t *testing.T) {
		if resolvesTo(1) != "alice" || resolvesTo(2) != "bob" || resolvesTo(3) != "" {
			t.Errorf("seeded resolution wrong: %q %q %q", resolvesTo(1), resolvesTo(2), resolvesTo(3))
		}
		if _, ok := s.ResolveFromFingerprint(""); ok {
			t.Error("empty fingerprint resolved")
		}
	})

	t.Run("put inserts", func(t *testing.T) {
		if err := s.PutPeer(ctx, peer("carol", 3, true)); err != nil {
			t.Fatal(err)
		}
		if resolvesTo(3) != "carol" {
			t.Error("new peer does not resolve")
		}
	})

	t.Run("put upserts", func(t *testing.T) {
		if err := s.PutPeer(ctx, peer("carol", 4, true)); err != nil {
			t.Fatal(err)
		}
		if resolvesTo(3) != "" || resolvesTo(4) != "carol" {
			t.Errorf("after upsert: old fp -> %q, new fp -> %q; want none, carol", resolvesTo(3), resolvesTo(4))
		}
	})

	t.Run("update existing with rename", func(t *testing.T) {
		if err := s.UpdatePeer(ctx, "carol", peer("caroline", 4, true)); err != nil {
			t.Fatal(err)
		}
		if resolvesTo(4) != "caroline" {
			t.Errorf("after rename fp resolves to %q, want caroline", resolvesTo(4))
		}
		err := s.UpdatePeer(ctx, "carol", peer("carol", 4, true))
		if !errors.Is(err, core.ErrNotFound) {
			t.Errorf("UpdatePeer(old id) = %v, want ErrNotFound", err)
		}
	})

	t.Run("update in place", func(t *testing.T) {
		if err := s.UpdatePeer(ctx, "bob", peer("bob", 2, false)); err != nil {
			t.Fatal(err)
		}
		if resolvesTo(2) != "" {
			t.Error("disabled bob still resolves")
		}
	})

	t.Run("update missing", func(t *testing.T) {
		err := s.UpdatePeer(ctx, "nobody", peer("nobody", 9, true))
		if !errors.Is(err, core.ErrNotFound) || err.Error() != "not found: peer nobody" {
			t.Errorf("UpdatePeer(missing) = %v, want not found: peer nobody", err)
		}
		if resolvesTo(9) != "" {
			t.Error("failed update inserted a peer")
		}
	})

	t.Run("rename onto another existing id", func(t *testing.T) {
		err := s.UpdatePeer(ctx, "alice", peer("bob", 7, true))
		if err == nil || errors.Is(err, core.ErrNotFound) {
			t.Fatalf("UpdatePeer rename onto bob = %v, want a non-NotFound error", err)
		}
		var se *core.StoreError
		if !errors.As(err, &se) || se.Kind != core.StoreBackend {
			t.Errorf("error %v is not a backend StoreError", err)
		}
		if resolvesTo(1) != "alice" || resolvesTo(7) != "" {
			t.Error("failed rename changed the store")
		}
	})

	t.Run("remove", func(t *testing.T) {
		if err := s.RemovePeer(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if resolvesTo(1) != "" {
			t.Error("removed peer resolves")
		}
		err := s.RemovePeer(ctx, "alice")
		if !errors.Is(err, core.ErrNotFound) || err.Error() != "not found: peer alice" {
			t.Errorf("RemovePeer(missing) = %v, want not found: peer alice", err)
		}
	})

	t.Run("empty peer id", func(t *testing.T) {
		if err := s.PutPeer(ctx, core.PeerEntry{}); err == nil || errors.Is(err, core.ErrNotFound) {
			t.Errorf("PutPeer(empty id) = %v, want a backend error", err)
		}
		if err := s.UpdatePeer(ctx, "bob", core.PeerEntry{}); err == nil || errors.Is(err, core.ErrNotFound) {
			t.Errorf("UpdatePeer(to empty id) = %v, want a backend error", err)
		}
	})
}

func TestInMemoryIdentityStoreTokensAndCopies(t *testing.T) {
	alice := peer("alice", 1, true)
	alice.AuthTokenHash = core.HashToken([]byte("alice-tok"))
	alice.Resources = map[string][]string{"service": {"gitea"}}
	bob := peer("bob", 2, false)
	bob.AuthTokenHash = core.HashToken([]byte("bob-tok"))
	s := core.NewInMemoryIdentityStore(alice, bob)

	tests := []struct {
		tok  string
		want string
	}{
		{"alice-tok", "alice"},
		{"bob-tok", ""}, // disabled
		{"unknown", ""},
		{"", ""},
	}
	for _, tt := range tests {
		id, ok := s.ResolveFromToken(core.AuthToken{Raw: []byte(tt.tok)})
		got := ""
		if ok {
			got = id.ID
		}
		if got != tt.want {
			t.Errorf("ResolveFromToken(%q) = %q, want %q", tt.tok, got, tt.want)
		}
	}

	// The seed and the results are copies.
	alice.Fingerprints[0] = fpOf(5)
	alice.Resources["service"][0] = "x"
	id, ok := s.ResolveFromFingerprint(fpOf(1))
	if !ok || id.Resources["service"][0] != "gitea" {
		t.Fatalf("store shares memory with the seed: %+v, %v", id, ok)
	}
	id.Resources["service"][0] = "y"
	id.Scopes[0] = "admin"
	again, _ := s.ResolveFromFingerprint(fpOf(1))
	if again.Resources["service"][0] != "gitea" || again.Scopes[0] != "s-alice" {
		t.Errorf("store shares memory with results: %+v", again)
	}
}

func TestInMemoryOwnership(t *testing.T) {
	ctx := t.Context()
	var _ core.OwnershipStore = (*core.InMemoryOwnership)(nil)
	alice := &core.Identity{ID: "alice"}
	aliceAgain := &core.Identity{ID: "alice", Scopes: []string{"other"}} // same ID, other value
	bob := &core.Identity{ID: "bob"}

	o := core.NewInMemoryOwnership()
	record := func(id *core.Identity, typ, rid string) {
		t.Helper()
		if err := o.Record(ctx, id, typ, rid); err != nil {
			t.Fatalf("Record(%v, %s, %s): %v", id, typ, rid, err)
		}
	}
	record(alice, "tunnel", "t1")
	record(alice, "tunnel", "t2")
	record(alice, "vm", "v1")
	record(bob, "tunnel", "t3")

	owns := []struct {
		id     *core.Identity
		typ    string
		rid    string
		action string
		want   bool
	}{
		{alice, "tunnel", "t1", "read", true},
		{alice, "tunnel", "t1", "delete", true}, // action ignored
		{aliceAgain, "tunnel", "t1", "", true},  // compared by ID
		{bob, "tunnel", "t1", "read", false},    // different identity
		{alice, "vm", "t1", "read", false},      // type filtering
		{alice, "tunnel", "t3", "read", false},
		{alice, "tunnel", "nope", "read", false},
		{nil, "tunnel", "t1", "read", false},
	}
	for _, tt := range owns {
		if got := o.Owns(tt.id, tt.typ, tt.rid, tt.action); got != tt.want {
			t.Errorf("Owns(%v, %s, %s, %s) = %v, want %v", tt.id, tt.typ, tt.rid, tt.action, got, tt.want)
		}
	}

	if got := o.OwnedResources(alice, "tunnel"); !slices.Equal(got, []string{"t1", "t2"}) {
		t.Errorf("OwnedResources(alice, tunnel) = %q, want [t1 t2]", got)
	}
	if got := o.OwnedResources(alice, "vm"); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("OwnedResources(alice, vm) = %q, want [v1]", got)
	}
	if got := o.OwnedResources(bob, "vm"); len(got) != 0 {
		t.Errorf("OwnedResources(bob, vm) = %q, want none", got)
	}
	if got := o.OwnedResources(nil, "tunnel"); got != nil {
		t.Errorf("OwnedResources(nil) = %q", got)
	}
	for _, tt := range []struct {
		id   *core.Identity
		typ  string
		want bool
	}{
		{alice, "tunnel", true}, {alice, "vm", true}, {bob, "vm", false}, {bob, "tunnel", true}, {nil, "tunnel", false},
	} {
		if got := o.OwnsAny(tt.id, tt.typ); got != tt.want {
			t.Errorf("OwnsAny(%v, %s) = %v, want %v", tt.id, tt.typ, got, tt.want)
		}
	}

	// Record replaces the owner.
	record(bob, "tunnel", "t1")
	if o.Owns(alice, "tunnel", "t1", "") || !o.Owns(bob, "tunnel", "t1", "") {
		t.Error("Record did not replace the owner")
	}

	// Revoke forgets; revoking something unknown is a no-op.
	if err := o.Revoke(ctx, "tunnel", "t2"); err != nil {
		t.Fatal(err)
	}
	if o.Owns(alice, "tunnel", "t2", "") {
		t.Error("revoked resource still owned")
	}
	if err := o.Revoke(ctx, "tunnel", "never"); err != nil {
		t.Errorf("Revoke(missing) = %v, want nil", err)
	}
	if o.OwnsAny(alice, "tunnel") {
		t.Error("alice still owns a tunnel after losing t1 and t2")
	}
	if !o.OwnsAny(alice, "vm") {
		t.Error("revoking tunnels touched alice's vm")
	}

	if err := o.Record(ctx, nil, "tunnel", "t9"); err == nil {
		t.Error("Record(nil identity) succeeded")
	}

	var zero core.InMemoryOwnership
	if err := zero.Record(ctx, alice, "x", "1"); err != nil || !zero.Owns(alice, "x", "1", "") {
		t.Errorf("zero-value ownership unusable: %v", err)
	}
}
