package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// §9.5 AES-256-GCM known-answer test.
const (
	aesKATKey       = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	aesKATNonce     = "000102030405060708090a0b"
	aesKATPlaintext = "hello, alknet vault!"
	aesKATSealed    = "2f67ba77aac9e27ae12af9eec5c90e0cf6baf31572b3e9269262e4836ee538968c432f2e"
)

// §9.5: a blob that decrypts to "sk-test-123" with the §9.3 v2 key, and the same blob
// with one tag bit flipped.
const (
	vectorBlob        = `{"key_version":2,"salt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","iv":"DA0ODxAREhMUFRYX","data":"w1j3EjEFq6LZ4xgwGr8Sn8luZSNPyTF9G+Ot"}`
	vectorBlobFlipped = `{"key_version":2,"salt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","iv":"DA0ODxAREhMUFRYX","data":"w1j3EjEFq6LZ4xgwGr8Sn8luZSNPyTF9G+Os"}`
	vectorPlaintext   = "sk-test-123"
)

// Base64 pieces for building blobs.
var (
	b64Salt32 = base64.StdEncoding.EncodeToString(make([]byte, 32))
	b64IV12   = base64.StdEncoding.EncodeToString(make([]byte, 12))
	b64Data16 = base64.StdEncoding.EncodeToString(make([]byte, 16))
)

func b64n(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, n)) }

// blobJSON builds a blob from raw JSON values (already quoted where needed); an empty
// value leaves the field out.
func blobJSON(keyVersion, salt, iv, data string) string {
	var parts []string
	for _, f := range [][2]string{{"key_version", keyVersion}, {"salt", salt}, {"iv", iv}, {"data", data}} {
		if f[1] != "" {
			parts = append(parts, fmt.Sprintf("%q:%s", f[0], f[1]))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func q(s string) string { return fmt.Sprintf("%q", s) }

// wantBlobError checks that err matches want (and, for ErrMalformedBlob and
// ErrUnsupportedKeyVersion, not the other).
func wantBlobError(t *testing.T, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %q does not match %v", err, want)
	}
	for _, other := range []error{ErrMalformedBlob, ErrUnsupportedKeyVersion, ErrDecrypt} {
		if other != want && errors.Is(err, other) {
			t.Errorf("error %q also matches %v", err, other)
		}
	}
}

func TestAESGCMKnownAnswer(t *testing.T) {
	t.Parallel()
	key := mustHex(t, aesKATKey)
	nonce := mustHex(t, aesKATNonce)
	gcm, err := newGCM(key)
	if err != nil {
		t.Fatalf("newGCM: %v", err)
	}
	if gcm.NonceSize() != NonceSize || gcm.Overhead() != TagSize {
		t.Errorf("nonce size %d, overhead %d", gcm.NonceSize(), gcm.Overhead())
	}
	sealed := gcm.Seal(nil, nonce, []byte(aesKATPlaintext), nil)
	if got := hex.EncodeToString(sealed); got != aesKATSealed {
		t.Fatalf("ct||tag = %s, want %s", got, aesKATSealed)
	}
	// The same through open with a hand-made blob.
	blob := &EncryptedData{
		KeyVersion: 2,
		Salt:       b64Salt32,
		IV:         base64.StdEncoding.EncodeToString(nonce),
		Data:       base64.StdEncoding.EncodeToString(mustHex(t, aesKATSealed)),
	}
	pt, err := openBlob(key, blob)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if string(pt) != aesKATPlaintext {
		t.Errorf("open = %q, want %q", pt, aesKATPlaintext)
	}
}

func TestNewGCMRejectsKeySize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 24, 31, 33} {
		if _, err := newGCM(make([]byte, n)); err == nil {
			t.Errorf("newGCM(%d-byte key): no error", n)
		}
	}
	if _, err := seal(make([]byte, 16), 2, []byte("x")); err == nil {
		t.Errorf("seal with a 16-byte key: no error")
	}
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	key := mustHex(t, aesKATKey)
	for _, pt := range [][]byte{nil, {}, []byte("x"), []byte(aesKATPlaintext), bytes.Repeat([]byte{0}, 4096)} {
		a, err := seal(key, 7, pt)
		if err != nil {
			t.Fatalf("seal: %v", err)
		}
		if a.KeyVersion != 7 {
			t.Errorf("KeyVersion = %d, want 7", a.KeyVersion)
		}
		if err := a.Validate(); err != nil {
			t.Errorf("Validate of a sealed blob: %v", err)
		}
		wantDecodedLen(t, "salt", a.Salt, SaltSize)
		wantDecodedLen(t, "iv", a.IV, NonceSize)
		wantDecodedLen(t, "data", a.Data, len(pt)+TagSize)
		got, err := openBlob(key, a)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		if !bytes.Equal(got, pt) {
			t.Errorf("open = %q, want %q", got, pt)
		}
		b, err := seal(key, 7, pt)
		if err != nil {
			t.Fatal(err)
		}
		if a.IV == b.IV || a.Data == b.Data || a.Salt == b.Salt {
			t.Errorf("two seals share iv, salt or data: %+v %+v", a, b)
		}
	}
}

func wantDecodedLen(t *testing.T, name, s string, n int) {
	t.Helper()
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		t.Errorf("%s %q is not standard base64: %v", name, s, err)
		return
	}
	if len(b) != n {
		t.Errorf("%s decodes to %d bytes, want %d", name, len(b), n)
	}
}

func TestOpenFailsGenerically(t *testing.T) {
	t.Parallel()
	key := mustHex(t, aesKATKey)
	blob, err := seal(key, 2, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := bytes.Clone(key)
	wrongKey[31] ^= 1
	data, _ := base64.StdEncoding.DecodeString(blob.Data)
	iv, _ := base64.StdEncoding.DecodeString(blob.IV)
	mutate := func(f func(e *EncryptedData)) *EncryptedData {
		e := *blob
		f(&e)
		return &e
	}
	flip := func(b []byte, i int) string {
		c := bytes.Clone(b)
		c[i] ^= 0x80
		return base64.StdEncoding.EncodeToString(c)
	}
	tests := []struct {
		name string
		key  []byte
		blob *EncryptedData
	}{
		{"wrong key", wrongKey, blob},
		{"flipped ciphertext bit", key, mutate(func(e *EncryptedData) { e.Data = flip(data, 0) })},
		{"flipped tag bit", key, mutate(func(e *EncryptedData) { e.Data = flip(data, len(data)-1) })},
		{"flipped iv bit", key, mutate(func(e *EncryptedData) { e.IV = flip(iv, 5) })},
		{"truncated to the tag", key, mutate(func(e *EncryptedData) {
			e.Data = base64.StdEncoding.EncodeToString(data[len(data)-TagSize:])
		})},
		{"16 zero bytes", key, mutate(func(e *EncryptedData) { e.Data = b64Data16 })},
		{"extended", key, mutate(func(e *EncryptedData) {
			e.Data = base64.StdEncoding.EncodeToString(append(bytes.Clone(data), 0))
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := openBlob(tc.key, tc.blob)
			if pt != nil {
				t.Errorf("open returned plaintext %q", pt)
			}
			wantBlobError(t, err, ErrDecrypt)
			if err.Error() != ErrDecrypt.Error() {
				t.Errorf("error %q is not the generic ErrDecrypt message", err)
			}
		})
	}
	// The salt plays no part in the cipher: another valid salt still opens.
	other := mutate(func(e *EncryptedData) { e.Salt = b64n(32) })
	if pt, err := openBlob(key, other); err != nil || string(pt) != "secret" {
		t.Errorf("open with another salt = %q, %v", pt, err)
	}
}

func TestParseEncryptedDataVector(t *testing.T) {
	t.Parallel()
	ed, err := ParseEncryptedData([]byte(vectorBlob))
	if err != nil {
		t.Fatalf("ParseEncryptedData(§9.5 blob): %v", err)
	}
	want := EncryptedData{
		KeyVersion: 2,
		Salt:       "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		IV:         "DA0ODxAREhMUFRYX",
		Data:       "w1j3EjEFq6LZ4xgwGr8Sn8luZSNPyTF9G+Ot",
	}
	if *ed != want {
		t.Errorf("parsed %+v, want %+v", *ed, want)
	}
	out, err := json.Marshal(ed)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != vectorBlob {
		t.Errorf("json.Marshal = %s, want the frozen form %s", out, vectorBlob)
	}
	// The flipped blob is well formed; only decryption fails.
	if _, err := ParseEncryptedData([]byte(vectorBlobFlipped)); err != nil {
		t.Errorf("ParseEncryptedData(flipped blob): %v", err)
	}
}

func TestParseEncryptedDataBadInput(t *testing.T) {
	t.Parallel()
	salt, iv, data := q(b64Salt32), q(b64IV12), q(b64Data16)
	unsupported, malformed := ErrUnsupportedKeyVersion, ErrMalformedBlob
	tests := []struct {
		name string
		blob string
		want error // nil: accepted
	}{
		// key_version
		{"key_version 0", blobJSON("0", salt, iv, data), unsupported},
		{"key_version 1", blobJSON("1", salt, iv, data), unsupported},
		{"key_version 2", blobJSON("2", salt, iv, data), nil},
		{"key_version 3", blobJSON("3", salt, iv, data), nil},
		{"key_version maxKeyVersion", blobJSON(fmt.Sprint(maxKeyVersion), salt, iv, data), nil},
		{"key_version maxKeyVersion+1", blobJSON(fmt.Sprint(maxKeyVersion+1), salt, iv, data), unsupported},
		{"key_version MaxUint32", blobJSON("4294967295", salt, iv, data), unsupported},
		{"key_version 2^32", blobJSON("4294967296", salt, iv, data), unsupported},
		{"key_version 2^32+2", blobJSON("4294967298", salt, iv, data), unsupported},
		{"key_version 2^64+2", blobJSON("18446744073709551618", salt, iv, data), unsupported},
		{"key_version -1", blobJSON("-1", salt, iv, data), malformed},
		{"key_version -2", blobJSON("-2", salt, iv, data), malformed},
		{"key_version -0", blobJSON("-0", salt, iv, data), malformed},
		{"key_version 2.0", blobJSON("2.0", salt, iv, data), malformed},
		{"key_version 2.5", blobJSON("2.5", salt, iv, data), malformed},
		{"key_version 2e0", blobJSON("2e0", salt, iv, data), malformed},
		{"key_version 0.2e1", blobJSON("0.2e1", salt, iv, data), malformed},
		{"key_version true", blobJSON("true", salt, iv, data), malformed},
		{"key_version null", blobJSON("null", salt, iv, data), malformed},
		{"key_version array", blobJSON("[2]", salt, iv, data), malformed},
		{"key_version object", blobJSON(`{"v":2}`, salt, iv, data), malformed},
		{"key_version leading zero", blobJSON("02", salt, iv, data), malformed},
		// Missing fields.
		{"missing key_version", blobJSON("", salt, iv, data), malformed},
		{"missing salt", blobJSON("2", "", iv, data), malformed},
		{"missing iv", blobJSON("2", salt, "", data), malformed},
		{"missing data", blobJSON("2", salt, iv, ""), malformed},
		{"empty object", "{}", malformed},
		{"null fields", blobJSON("2", "null", "null", "null"), malformed},
		// Extra fields are tolerated.
		{"unknown extra field", `{"key_version":2,"salt":` + salt + `,"iv":` + iv + `,"data":` + data + `,"kdf":"none","extra":{"a":[1,2]}}`, nil},
		{"fields in another order", `{"data":` + data + `,"iv":` + iv + `,"salt":` + salt + `,"key_version":2}`, nil},
		{"whitespace around", " \n\t" + blobJSON("2", salt, iv, data) + "\n ", nil},
		// Salt.
		{"salt 31 bytes", blobJSON("2", q(b64n(31)), iv, data), malformed},
		{"salt 32 bytes", blobJSON("2", q(b64n(32)), iv, data), nil},
		{"salt 33 bytes", blobJSON("2", q(b64n(33)), iv, data), malformed},
		{"salt 16 bytes (TypeScript)", blobJSON("2", q(b64n(16)), iv, data), malformed},
		{"salt empty", blobJSON("2", q(""), iv, data), malformed},
		{"salt not a string", blobJSON("2", "32", iv, data), malformed},
		// IV.
		{"iv 0 bytes", blobJSON("2", salt, q(""), data), malformed},
		{"iv 8 bytes", blobJSON("2", salt, q(b64n(8)), data), malformed},
		{"iv 11 bytes", blobJSON("2", salt, q(b64n(11)), data), malformed},
		{"iv 12 bytes", blobJSON("2", salt, q(b64n(12)), data), nil},
		{"iv 13 bytes", blobJSON("2", salt, q(b64n(13)), data), malformed},
		{"iv 16 bytes", blobJSON("2", salt, q(b64n(16)), data), malformed},
		// Data.
		{"data empty", blobJSON("2", salt, iv, q("")), malformed},
		{"data 1 byte", blobJSON("2", salt, iv, q(b64n(1))), malformed},
		{"data 15 bytes", blobJSON("2", salt, iv, q(b64n(15))), malformed},
		{"data 16 bytes", blobJSON("2", salt, iv, q(b64n(16))), nil},
		{"data 17 bytes", blobJSON("2", salt, iv, q(b64n(17))), nil},
		// Base64 form.
		{"salt unpadded", blobJSON("2", q(strings.TrimRight(b64n(32), "=")), iv, data), malformed},
		{"data unpadded", blobJSON("2", salt, iv, q(strings.TrimRight(b64n(17), "="))), malformed},
		{"data raw url encoding", blobJSON("2", salt, iv, q(base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 9)))), malformed},
		{"data url alphabet", blobJSON("2", salt, iv, q(base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 9)))), malformed},
		{"iv with embedded newline", blobJSON("2", salt, q(b64IV12[:8]+"\n"+b64IV12[8:]), data), malformed},
		{"data with embedded newline", blobJSON("2", salt, iv, q(b64n(48)[:32]+"\n"+b64n(48)[32:])), malformed},
		{"salt with embedded CRLF", blobJSON("2", q(b64Salt32[:20]+"\r\n"+b64Salt32[20:]), iv, data), malformed},
		{"salt with a space", blobJSON("2", q(b64Salt32[:20]+" "+b64Salt32[20:]), iv, data), malformed},
		{"salt with non-zero padding bits", blobJSON("2", q(strings.Repeat("A", 42)+"B="), iv, data), malformed},
		{"iv with a bad character", blobJSON("2", salt, q("DA0ODxAREhMUFRY*"), data), malformed},
		{"data with excess padding", blobJSON("2", salt, iv, q(b64Data16+"====")), malformed},
		{"data with padding in the middle", blobJSON("2", salt, iv, q("AAAA=AAA"+b64Data16)), malformed},
		// Not a blob at all.
		{"empty input", "", malformed},
		{"not JSON", "hello", malformed},
		{"JSON null", "null", malformed},
		{"JSON array", "[]", malformed},
		{"JSON string", `"blob"`, malformed},
		{"JSON number", "2", malformed},
		{"truncated JSON", vectorBlob[:len(vectorBlob)-1], malformed},
		{"truncated JSON in a value", vectorBlob[:40], malformed},
		{"trailing garbage", vectorBlob + "x", malformed},
		{"two objects", vectorBlob + vectorBlob, malformed},
		{"invalid UTF-8", "{\"key_version\":2,\"salt\":\"\xff\"}", malformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ed, err := ParseEncryptedData([]byte(tc.blob))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("ParseEncryptedData(%s): %v", tc.blob, err)
				}
				if err := ed.Validate(); err != nil {
					t.Errorf("Validate of an accepted blob: %v", err)
				}
				return
			}
			if ed != nil {
				t.Errorf("ParseEncryptedData returned %+v with an error", ed)
			}
			wantBlobError(t, err, tc.want)
		})
	}
}

// TestParseEncryptedDataJSONErrorsAreWrapped: a truncated or non-JSON blob gives the
// JSON error wrapped in ErrMalformedBlob (vault.md §10 table).
func TestParseEncryptedDataJSONErrorsAreWrapped(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"hello", vectorBlob[:len(vectorBlob)-1], "{", `{"key_version":2,`} {
		_, err := ParseEncryptedData([]byte(in))
		wantBlobError(t, err, ErrMalformedBlob)
		var syn *json.SyntaxError
		if !errors.As(err, &syn) {
			t.Errorf("ParseEncryptedData(%q): %v does not wrap a *json.SyntaxError", in, err)
		}
	}
}

// TestParseEncryptedDataKeyVersionMustBeANumber: the frozen format has key_version as
// a JSON number (a u32 for the Rust reader); a JSON string is malformed, as serde
// rejects it.
func TestParseEncryptedDataKeyVersionMustBeANumber(t *testing.T) {
	t.Parallel()
	for _, kv := range []string{`"2"`, `"3"`} {
		blob := blobJSON(kv, q(b64Salt32), q(b64IV12), q(b64Data16))
		ed, err := ParseEncryptedData([]byte(blob))
		if err == nil {
			t.Errorf("ParseEncryptedData(%s) accepted a quoted key_version: %+v", blob, *ed)
			continue
		}
		wantBlobError(t, err, ErrMalformedBlob)
	}
}

// TestParseEncryptedDataFieldNamesAreExact: the field names are frozen snake_case
// (ADR-018); other spellings are unknown fields, so the required field is missing (as
// for serde in the Rust vault).
func TestParseEncryptedDataFieldNamesAreExact(t *testing.T) {
	t.Parallel()
	salt, iv, data := q(b64Salt32), q(b64IV12), q(b64Data16)
	for _, blob := range []string{
		`{"KEY_VERSION":2,"salt":` + salt + `,"iv":` + iv + `,"data":` + data + `}`,
		`{"key_version":2,"Salt":` + salt + `,"iv":` + iv + `,"data":` + data + `}`,
		`{"key_version":2,"salt":` + salt + `,"IV":` + iv + `,"data":` + data + `}`,
		`{"key_version":2,"salt":` + salt + `,"iv":` + iv + `,"Data":` + data + `}`,
	} {
		ed, err := ParseEncryptedData([]byte(blob))
		if err == nil {
			t.Errorf("ParseEncryptedData(%s) accepted a misspelt field name: %+v", blob, *ed)
			continue
		}
		wantBlobError(t, err, ErrMalformedBlob)
	}
}

func TestParseEncryptedDataLimit(t *testing.T) {
	t.Parallel()
	blob := []byte(vectorBlob)
	if _, err := ParseEncryptedDataLimit(blob, len(blob)); err != nil {
		t.Errorf("ParseEncryptedDataLimit at the limit: %v", err)
	}
	_, err := ParseEncryptedDataLimit(blob, len(blob)-1)
	wantBlobError(t, err, ErrMalformedBlob)
	_, err = ParseEncryptedDataLimit(blob, 0)
	wantBlobError(t, err, ErrMalformedBlob)

	// MaxEncryptedDataSize through ParseEncryptedData: a large, valid blob padded with
	// JSON white space to exactly the limit, then one byte more.
	big := []byte(blobJSON("2", q(b64Salt32), q(b64IV12), q(b64n(MaxEncryptedDataSize/2))))
	if len(big) > MaxEncryptedDataSize {
		t.Fatalf("test bug: %d bytes", len(big))
	}
	big = append(big, bytes.Repeat([]byte(" "), MaxEncryptedDataSize-len(big))...)
	if _, err := ParseEncryptedData(big); err != nil {
		t.Errorf("ParseEncryptedData(%d bytes, the limit): %v", len(big), err)
	}
	_, err = ParseEncryptedData(append(big, ' '))
	wantBlobError(t, err, ErrMalformedBlob)
	// A larger explicit limit accepts it.
	if _, err := ParseEncryptedDataLimit(append(big, ' '), MaxEncryptedDataSize+1); err != nil {
		t.Errorf("ParseEncryptedDataLimit(limit+1): %v", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	valid := EncryptedData{KeyVersion: 2, Salt: b64Salt32, IV: b64IV12, Data: b64Data16}
	if err := valid.Validate(); err != nil {
		t.Fatalf("Validate(valid): %v", err)
	}
	tests := []struct {
		name string
		mod  func(*EncryptedData)
		want error
	}{
		{"zero value", func(e *EncryptedData) { *e = EncryptedData{} }, ErrUnsupportedKeyVersion},
		{"version 1", func(e *EncryptedData) { e.KeyVersion = 1 }, ErrUnsupportedKeyVersion},
		{"version too large", func(e *EncryptedData) { e.KeyVersion = maxKeyVersion + 1 }, ErrUnsupportedKeyVersion},
		{"empty salt", func(e *EncryptedData) { e.Salt = "" }, ErrMalformedBlob},
		{"empty iv", func(e *EncryptedData) { e.IV = "" }, ErrMalformedBlob},
		{"empty data", func(e *EncryptedData) { e.Data = "" }, ErrMalformedBlob},
		{"huge iv", func(e *EncryptedData) { e.IV = b64n(1 << 16) }, ErrMalformedBlob},
	}
	for _, tc := range tests {
		e := valid
		tc.mod(&e)
		err := e.Validate()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Validate = %v, want %v", tc.name, err, tc.want)
		}
		// open validates first and never panics on a bad shape.
		if _, err := openBlob(make([]byte, KeySize), &e); !errors.Is(err, tc.want) {
			t.Errorf("%s: open = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func FuzzParseEncryptedData(f *testing.F) {
	salt, iv, data := q(b64Salt32), q(b64IV12), q(b64Data16)
	for _, s := range []string{
		vectorBlob, vectorBlobFlipped, "", "null", "{}", "[]", "hello", vectorBlob[:40],
		blobJSON("0", salt, iv, data), blobJSON("1", salt, iv, data), blobJSON("4294967296", salt, iv, data),
		blobJSON("-1", salt, iv, data), blobJSON("2.0", salt, iv, data), blobJSON(`"2"`, salt, iv, data),
		blobJSON("2", "", iv, data), blobJSON("2", salt, q(b64n(8)), data), blobJSON("2", salt, q(b64n(11)), data),
		blobJSON("2", salt, q(b64n(13)), data), blobJSON("2", salt, iv, q(b64n(15))),
		blobJSON("2", q(b64n(31)), iv, data), blobJSON("2", q(b64n(33)), iv, data),
		blobJSON("2", q(strings.TrimRight(b64n(32), "=")), iv, data),
		blobJSON("2", salt, q(b64IV12[:8]+"\n"+b64IV12[8:]), data),
		`{"KEY_VERSION":2,"salt":` + salt + `,"iv":` + iv + `,"data":` + data + `}`,
		`{"key_version":2,"salt":` + salt + `,"iv":` + iv + `,"data":` + data + `,"x":1}`,
	} {
		f.Add([]byte(s))
	}
	key := mustHex(f, aesKATKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		ed, err := ParseEncryptedData(b)
		if err != nil {
			if ed != nil {
				t.Fatalf("returned %+v with error %v", ed, err)
			}
			if !errors.Is(err, ErrMalformedBlob) && !errors.Is(err, ErrUnsupportedKeyVersion) {
				t.Fatalf("error %v matches neither ErrMalformedBlob nor ErrUnsupportedKeyVersion", err)
			}
			return
		}
		if err := ed.Validate(); err != nil {
			t.Fatalf("accepted blob fails Validate: %v", err)
		}
		out, err := json.Marshal(ed)
		if err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
		again, err := ParseEncryptedData(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if *again != *ed {
			t.Fatalf("re-parsed %+v, want %+v", *again, *ed)
		}
		pt, err := openBlob(key, ed)
		if err != nil && !errors.Is(err, ErrDecrypt) {
			t.Fatalf("open of an accepted blob: %v, want nil or ErrDecrypt", err)
		}
		if err != nil && pt != nil {
			t.Fatalf("open returned plaintext with an error")
		}
	})
}

// openBlob validates e and decrypts it under key, as Vault.Decrypt does after
// deriving the key.
func openBlob(key []byte, e *EncryptedData) ([]byte, error) {
	iv, data, err := e.decode()
	if err != nil {
		return nil, err
	}
	return open(key, iv, data)
}
