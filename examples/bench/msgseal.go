package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/alknet/alknet/msg"
)

// msgX25519 is an owner's X25519 key, as msg.Open takes it and as crypto/hpke does.
type msgX25519 struct {
	priv *ecdh.PrivateKey
	hpke hpke.PrivateKey
	pub  hpke.PublicKey
}

func newMsgX25519() (*msgX25519, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	k, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return &msgX25519{priv: priv, hpke: k, pub: k.PublicKey()}, nil
}

// msgSealBench is the seal+open metric of one body size: msg.Seal then msg.Open from the
// sender to the owner, against crypto/hpke's one-shot Seal then Open of the bare body
// with the same suite (X25519, HKDF-SHA256, ChaCha20-Poly1305) and an info string of
// the same length.
type msgSealBench struct {
	sender, owner *msgParty
	body          []byte
	info          []byte
}

func newMsgSealBench(sender, owner *msgParty, n int) (*msgSealBench, error) {
	if owner.x == nil {
		return nil, errors.New("the owner has no X25519 key")
	}
	info := append([]byte("alknet-msg-v1"), owner.bundle.X25519...)
	return &msgSealBench{sender: sender, owner: owner, body: msgBody(n), info: info}, nil
}

// sealOpen seals and opens once with msg and returns the opened body.
func (b *msgSealBench) sealOpen() ([]byte, error) {
	env, err := msg.Seal(b.sender.key, b.owner.pub, b.owner.bundle, b.body, msgContentType)
	if err != nil {
		return nil, err
	}
	m, err := msg.Open(b.owner.x.priv, b.owner.pub, env)
	if err != nil {
		return nil, err
	}
	return m.Body, nil
}

// hpkeSealOpen seals and opens once with crypto/hpke and returns the opened body.
func (b *msgSealBench) hpkeSealOpen() ([]byte, error) {
	ct, err := hpke.Seal(b.owner.x.pub, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), b.info, b.body)
	if err != nil {
		return nil, err
	}
	return hpke.Open(b.owner.x.hpke, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), b.info, ct)
}

// check makes sure both arms give back the body.
func (b *msgSealBench) check() error {
	for name, f := range map[string]func() ([]byte, error){armMsgSeal: b.sealOpen, armMsgHPKE: b.hpkeSealOpen} {
		got, err := f()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if !bytes.Equal(got, b.body) {
			return fmt.Errorf("%s: the opened body differs", name)
		}
	}
	return nil
}

// round seals and opens in one goroutine for d with the arm name and returns
// seal+open/s; each seal+open is timed.
func (b *msgSealBench) round(ctx context.Context, name string, d time.Duration, lat [][]time.Duration) (sample, error) {
	f := b.sealOpen
	if name == armMsgHPKE {
		f = b.hpkeSealOpen
	}
	return latencyRound(ctx, d, lat, "seal+open", func() func(context.Context) (time.Time, error) {
		return func(context.Context) (time.Time, error) {
			got, err := f()
			t1 := time.Now()
			if err == nil && len(got) != len(b.body) {
				err = fmt.Errorf("opened %d bytes, sealed %d", len(got), len(b.body))
			}
			return t1, err
		}
	})
}
