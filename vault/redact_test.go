package vault

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// redactPhrase is the mnemonic of the redaction tests: its words are distinctive enough
// that none of them appears in a formatted output by accident.
const redactPhrase = "ozone drill grab fiber curtain grace pudding thank cruise elder eight picnic"

// secretFixture holds every secret-bearing value and the strings that must never show up
// in anything printed, logged or marshalled.
type secretFixture struct {
	mnemonic *Mnemonic
	seed     *Seed
	ext      *ExtendedKey
	edKey    *DerivedKey
	aesKey   *DerivedKey
	// forbidden are renderings of the secret bytes and the phrase words.
	forbidden []string
}

// renderings returns the ways secret bytes b might leak: hex (both cases), standard and
// raw base64 (std and URL alphabets), the decimal byte list fmt prints, and prefixes of
// each (a truncated leak is still a leak).
func renderings(b []byte) []string {
	dec := func(b []byte) string { return strings.Trim(fmt.Sprint(b), "[]") }
	var out []string
	for _, p := range [][]byte{b, b[:9]} {
		out = append(out,
			hex.EncodeToString(p),
			strings.ToUpper(hex.EncodeToString(p)),
			base64.StdEncoding.EncodeToString(p),
			base64.RawStdEncoding.EncodeToString(p),
			base64.URLEncoding.EncodeToString(p),
			base64.RawURLEncoding.EncodeToString(p),
			dec(p),
		)
	}
	return out
}

func newSecretFixture(t *testing.T) *secretFixture {
	t.Helper()
	f := &secretFixture{mnemonic: mustParseMnemonic(t, redactPhrase)}
	f.seed = mustSeed(t, f.mnemonic, nil)
	f.ext = mustDerive(t, f.seed, PathIdentity)
	v := New()
	if err := v.UnlockSeed(f.seed); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.edKey, err = v.DeriveEd25519(PathSSHHost); err != nil {
		t.Fatal(err)
	}
	if f.aesKey, err = v.EncryptionKeyForVersion(CurrentKeyVersion); err != nil {
		t.Fatal(err)
	}
	f.forbidden = append(f.forbidden, redactPhrase)
	f.forbidden = append(f.forbidden, strings.Fields(redactPhrase)...)
	for _, b := range [][]byte{
		[]byte(redactPhrase), f.seed.Bytes(), f.ext.Key(), f.ext.ChainCode(),
		f.ext.PrivateKey(), f.edKey.PrivateKey(), f.aesKey.PrivateKey(),
	} {
		f.forbidden = append(f.forbidden, renderings(b)...)
	}
	return f
}

// check fails if out contains a secret, or lacks [REDACTED] when wantRedacted is set.
func (f *secretFixture) check(t *testing.T, what, out string, wantRedacted bool) {
	t.Helper()
	for _, s := range f.forbidden {
		if i := strings.Index(out, s); i >= 0 {
			lo, hi := max(0, i-60), min(len(out), i+len(s)+20)
			t.Errorf("%s leaks a secret (%d-byte rendering %.24q...) at byte %d: ...%q...", what, len(s), s, i, out[lo:hi])
			return
		}
	}
	if wantRedacted && !strings.Contains(out, Redacted) {
		t.Errorf("%s does not contain %s:\n%s", what, Redacted, out)
	}
}

// Outer structs holding a secret in an exported and an unexported field, by pointer and
// by value.
type (
	holdMnemonic struct {
		Exported    *Mnemonic
		ExportedVal Mnemonic
		hidden      *Mnemonic
		hiddenVal   Mnemonic
	}
	holdSeed struct {
		Exported    *Seed
		ExportedVal Seed
		hidden      *Seed
		hiddenVal   Seed
	}
	holdExtendedKey struct {
		Exported    *ExtendedKey
		ExportedVal ExtendedKey
		hidden      *ExtendedKey
		hiddenVal   ExtendedKey
	}
	holdDerivedKey struct {
		Exported    *DerivedKey
		ExportedVal DerivedKey
		hidden      *DerivedKey
		hiddenVal   DerivedKey
	}
	// Only exported fields: every rendering shows the value, so [REDACTED] must appear.
	exportedOnly struct {
		Name string
		Key  *DerivedKey
		Val  DerivedKey
		Seed *Seed
	}
	// Only unexported fields, by pointer.
	hiddenPointers struct {
		m  *Mnemonic
		s  *Seed
		ek *ExtendedKey
		dk *DerivedKey
	}
	// Only unexported fields, by value.
	hiddenValues struct {
		m  Mnemonic
		s  Seed
		ek ExtendedKey
		dk DerivedKey
	}
)

// subject is one value to format.
type subject struct {
	name string
	v    any
	// redacted: every fmt verb output must contain [REDACTED]. Unset for structs whose
	// only secrets sit in unexported fields, which fmt prints without calling methods.
	redacted bool
	// hiddenValue: a secret type is held by value in an unexported field (see
	// TestRedactionFmtBadVerbUnexportedValueField).
	hiddenValue bool
}

func (f *secretFixture) subjects() []subject {
	m, s, ek, ed, aes := f.mnemonic, f.seed, f.ext, f.edKey, f.aesKey
	return []subject{
		{"*Mnemonic", m, true, false},
		{"Mnemonic", *m, true, false},
		{"*Seed", s, true, false},
		{"Seed", *s, true, false},
		{"*ExtendedKey", ek, true, false},
		{"ExtendedKey", *ek, true, false},
		{"*DerivedKey Ed25519", ed, true, false},
		{"DerivedKey Ed25519", *ed, true, false},
		{"*DerivedKey AES", aes, true, false},
		{"DerivedKey AES", *aes, true, false},
		{"[]*DerivedKey", []*DerivedKey{ed, aes}, true, false},
		{"map of *Seed", map[string]*Seed{"seed": s}, true, false},
		{"[]any", []any{m, *s, ek, *aes}, true, false},
		{"holdMnemonic", holdMnemonic{m, *m, m, *m}, true, true},
		{"*holdMnemonic", &holdMnemonic{m, *m, m, *m}, true, true},
		{"holdSeed", holdSeed{s, *s, s, *s}, true, true},
		{"holdExtendedKey", holdExtendedKey{ek, *ek, ek, *ek}, true, true},
		{"holdDerivedKey Ed25519", holdDerivedKey{ed, *ed, ed, *ed}, true, true},
		{"holdDerivedKey AES", holdDerivedKey{aes, *aes, aes, *aes}, true, true},
		{"*holdDerivedKey", &holdDerivedKey{aes, *aes, aes, *aes}, true, true},
		{"exportedOnly", exportedOnly{"x", ed, *aes, s}, true, false},
		{"hiddenPointers", hiddenPointers{m, s, ek, ed}, false, false},
		{"*hiddenPointers", &hiddenPointers{m, s, ek, aes}, false, false},
		{"hiddenValues Ed25519", hiddenValues{*m, *s, *ek, *ed}, false, true},
		{"hiddenValues AES", hiddenValues{*m, *s, *ek, *aes}, false, true},
		{"*hiddenValues", &hiddenValues{*m, *s, *ek, *ed}, false, true},
	}
}

// fmtVerbs are the verbs of the redaction tests. The format strings are variables so
// that vet does not object to %s on a struct that is not a Stringer: that is exactly
// what is under test.
var fmtVerbs = []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%t", "%10.3v", "%-+#v"}

func TestRedactionFmt(t *testing.T) {
	t.Parallel()
	f := newSecretFixture(t)
	for _, s := range f.subjects() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			for _, verb := range fmtVerbs {
				if s.hiddenValue && badVerbs[verb] {
					continue // TestRedactionFmtBadVerbUnexportedValueField
				}
				f.check(t, fmt.Sprintf("Sprintf(%s, %s)", verb, s.name), fmt.Sprintf(verb, s.v), s.redacted)
			}
			f.check(t, "Sprint", fmt.Sprint(s.v), s.redacted)
			f.check(t, "Sprintln", fmt.Sprintln(s.v), s.redacted)
			f.check(t, "error wrapping", fmt.Errorf("context: %v", s.v).Error(), s.redacted)
		})
	}
}

// badVerbs are the verbs fmt reports as wrong for a pointer ("%!s(...)").
var badVerbs = map[string]bool{"%s": true, "%q": true, "%t": true, "%c": true, "%e": true, "%g": true, "%U": true}

// TestRedactionFmtBadVerbUnexportedValueField: a struct that holds a Mnemonic, Seed,
// ExtendedKey or DerivedKey by value in an unexported field, printed with a verb that
// does not suit a pointer (%s, %q, ...). fmt cannot call the redacting methods of an
// unexported field, and for the *secretBytes field inside it, it reports the bad verb as
// "%!s(*vault.secretBytes=&{[...]})", printing the pointee at depth 0, i.e. the secret
// bytes in decimal. secret.go promises that such printing "shows an address, never the
// contents".
func TestRedactionFmtBadVerbUnexportedValueField(t *testing.T) {
	t.Parallel()
	f := newSecretFixture(t)
	for _, s := range f.subjects() {
		if !s.hiddenValue {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			for verb := range badVerbs {
				f.check(t, fmt.Sprintf("Sprintf(%s, %s)", verb, s.name), fmt.Sprintf(verb, s.v), false)
			}
		})
	}
}

// TestRedactionFmtUnexportedFieldsPlusV is the %+v case of the brief on its own: structs
// holding the secret types in unexported fields print addresses or [REDACTED], never the
// secret.
func TestRedactionFmtUnexportedFieldsPlusV(t *testing.T) {
	t.Parallel()
	f := newSecretFixture(t)
	for _, s := range f.subjects() {
		f.check(t, "%+v of "+s.name, fmt.Sprintf("%+v", s.v), s.redacted)
	}
}

func TestRedactionMethods(t *testing.T) {
	t.Parallel()
	f := newSecretFixture(t)
	values := map[string]any{
		"*Mnemonic": f.mnemonic, "Mnemonic": *f.mnemonic,
		"*Seed": f.seed, "Seed": *f.seed,
		"*ExtendedKey": f.ext, "ExtendedKey": *f.ext,
		"*DerivedKey Ed25519": f.edKey, "DerivedKey AES": *f.aesKey,
	}
	for name, v := range values {
		st, ok := v.(fmt.Stringer)
		if !ok || st.String() != Redacted {
			t.Errorf("%s: String() missing or not %s", name, Redacted)
		}
		gs, ok := v.(fmt.GoStringer)
		if !ok || gs.GoString() != Redacted {
			t.Errorf("%s: GoString() missing or not %s", name, Redacted)
		}
		tm, ok := v.(encoding.TextMarshaler)
		if !ok {
			t.Errorf("%s is not an encoding.TextMarshaler", name)
			continue
		}
		text, err := tm.MarshalText()
		if err != nil || string(text) != Redacted {
			t.Errorf("%s: MarshalText = %q, %v", name, text, err)
		}
		lv, ok := v.(slog.LogValuer)
		if !ok || lv.LogValue().String() != Redacted {
			t.Errorf("%s: LogValue missing or not %s", name, Redacted)
		}
		f.check(t, name+" MarshalText", string(text), true)
	}
}

func TestRedactionJSON(t *testing.T) {
	t.Parallel()
	f := newSecretFixture(t)
	for _, s := range f.subjects() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			out, err := json.Marshal(s.v)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			// Structs with only unexported fields marshal as {}: nothing printed.
			f.check(t, "json.Marshal", string(out), s.redacted)
			out, err = json.MarshalIndent(s.v, "", "  ")
			if err != nil {
				t.Fatalf("json.MarshalIndent: %v", err)
			}
			f.check(t, "json.MarshalIndent", string(out), s.redacted)
		})
	}
	// The exact form of a direct value.
	for name, v := range map[string]any{"*DerivedKey": f.edKey, "Seed": *f.seed, "*Mnemonic": f.mnemonic} {
		out, err := json.Marshal(v)
		if err != nil || string(out) != `"[REDACTED]"` {
			t.Errorf("json.Marshal(%s) = %s, %v", name, out, err)
		}
	}
	// As map keys (encoding.TextMarshaler).
	out, err := json.Marshal(map[*DerivedKey]int{f.aesKey: 1})
	if err != nil {
		t.Fatalf("json.Marshal(map key): %v", err)
	}
	f.check(t, "json map key", string(out), true)
}

func TestRedactionSlog(t *testing.T) {
	t.Parallel()
	f := newSecretFixture(t)
	dropTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	handlers := map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler {
			return slog.NewTextHandler(b, &slog.HandlerOptions{ReplaceAttr: dropTime})
		},
		"json": func(b *bytes.Buffer) slog.Handler {
			return slog.NewJSONHandler(b, &slog.HandlerOptions{ReplaceAttr: dropTime})
		},
	}
	for hname, newHandler := range handlers {
		for _, s := range f.subjects() {
			t.Run(hname+"/"+s.name, func(t *testing.T) {
				t.Parallel()
				logs := map[string]func(*slog.Logger){
					"attribute":    func(l *slog.Logger) { l.Info("m", "secret", s.v) },
					"slog.Any":     func(l *slog.Logger) { l.LogAttrs(t.Context(), slog.LevelInfo, "m", slog.Any("secret", s.v)) },
					"group":        func(l *slog.Logger) { l.Info("m", slog.Group("g", slog.Any("secret", s.v))) },
					"With":         func(l *slog.Logger) { l.With("secret", s.v).Info("m") },
					"WithGroup":    func(l *slog.Logger) { l.WithGroup("g").Info("m", "secret", s.v) },
					"nested group": func(l *slog.Logger) { l.Info("m", slog.Group("a", slog.Group("b", "secret", s.v))) },
				}
				for lname, log := range logs {
					var buf bytes.Buffer
					log(slog.New(newHandler(&buf)))
					// The text handler prints structs with %+v; the JSON handler marshals
					// them (unexported fields are left out).
					f.check(t, hname+" "+lname, buf.String(), s.redacted)
				}
			})
		}
	}
}

func TestUnmarshalRefusesSecrets(t *testing.T) {
	t.Parallel()
	inputs := []string{`"[REDACTED]"`, `"603aa5c626317fda4afd87b902e5c9de76c33f40834005245e1c5a675e92d700"`,
		`{}`, `{"private":"AAAA","typ":1}`, `123`, `[1,2,3]`, `null`, `true`}
	targets := map[string]func() any{
		"*DerivedKey":  func() any { return new(DerivedKey) },
		"*Seed":        func() any { return new(Seed) },
		"*Mnemonic":    func() any { return new(Mnemonic) },
		"*ExtendedKey": func() any { return new(ExtendedKey) },
	}
	for name, newTarget := range targets {
		for _, in := range inputs {
			target := newTarget()
			err := json.Unmarshal([]byte(in), target)
			if !errors.Is(err, ErrRedacted) {
				t.Errorf("json.Unmarshal(%s, %s) = %v, want an error wrapping ErrRedacted", in, name, err)
				continue
			}
			if !strings.Contains(strings.ToLower(err.Error()), "redacted") {
				t.Errorf("json.Unmarshal(%s, %s): message %q does not mention redaction", in, name, err)
			}
		}
		tu, ok := newTarget().(encoding.TextUnmarshaler)
		if !ok {
			t.Errorf("%s is not an encoding.TextUnmarshaler", name)
			continue
		}
		if err := tu.UnmarshalText([]byte(Redacted)); !errors.Is(err, ErrRedacted) {
			t.Errorf("%s.UnmarshalText = %v, want ErrRedacted", name, err)
		}
	}
	// A DerivedKey that refused to decode holds nothing.
	var dk DerivedKey
	_ = json.Unmarshal([]byte(`"[REDACTED]"`), &dk)
	if dk.PrivateKey() != nil || dk.PublicKey() != nil {
		t.Errorf("a refused DerivedKey holds key material")
	}
	// Inside an outer struct, the redacted field still fails the whole decode.
	var outer struct{ Key *DerivedKey }
	err := json.Unmarshal([]byte(`{"Key":"[REDACTED]"}`), &outer)
	if !errors.Is(err, ErrRedacted) || !strings.Contains(strings.ToLower(err.Error()), "redacted") {
		t.Errorf("json.Unmarshal into a struct with a *DerivedKey field = %v, want ErrRedacted", err)
	}
	// A marshal/unmarshal round trip cannot resurrect a key.
	f := newSecretFixture(t)
	out, err := json.Marshal(exportedOnly{Name: "n", Key: f.edKey, Seed: f.seed})
	if err != nil {
		t.Fatal(err)
	}
	var back exportedOnly
	if err := json.Unmarshal(out, &back); !errors.Is(err, ErrRedacted) {
		t.Errorf("round trip of a redacted struct: %v, want ErrRedacted", err)
	}
}

// TestErrorsDoNotLeak: errors built from secret input never echo it.
func TestErrorsDoNotLeak(t *testing.T) {
	t.Parallel()
	f := newSecretFixture(t)
	words := strings.Fields(redactPhrase)
	bad := [][]byte{
		[]byte(strings.Join(words[:11], " ") + " ozonex"),
		[]byte(strings.Join(words[:11], " ") + " ozone"),
		[]byte(strings.Join(words[:11], " ")),
		[]byte(redactPhrase + " " + redactPhrase),
		bytes.Repeat([]byte(redactPhrase+" "), 20),
	}
	for _, in := range bad {
		_, err := ParseMnemonic(in)
		if err == nil {
			t.Fatalf("ParseMnemonic accepted %q", in)
		}
		f.check(t, "ParseMnemonic error", err.Error(), false)
		f.check(t, "ParseMnemonic error %+v", fmt.Sprintf("%+v", err), false)
		f.check(t, "ParseMnemonic error %#v", fmt.Sprintf("%#v", err), false)
		v := New()
		err = v.Unlock(in, nil)
		f.check(t, "Unlock error", err.Error(), false)
	}
	// Decrypt errors say nothing about the key.
	v := New()
	if err := v.UnlockSeed(f.seed); err != nil {
		t.Fatal(err)
	}
	vec, err := ParseEncryptedData([]byte(vectorBlob))
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Decrypt(vec)
	if !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Decrypt under another seed: %v", err)
	}
	f.check(t, "Decrypt error", fmt.Sprintf("%+v %#v", err, err), false)
}
