// Package vault turns a BIP39 mnemonic into a node's keys and keeps secrets sealed at
// rest.
//
// It is a local library with no network surface: only the assembly layer (a binary such
// as examples/alknet) imports it, unlocks it, and hands handlers what they need as
// values — an Ed25519 key, or a decrypted credential inside core.Capabilities. No
// other alknet module imports the vault, and the vault imports none of them.
//
// The pieces:
//
//   - Mnemonics: NewMnemonic generates 12 to 24 English words from crypto/rand;
//     ParseMnemonic validates word count, words (reporting the position of an unknown
//     one) and checksum. Mnemonic.Seed is BIP39's PBKDF2-HMAC-SHA512 over the
//     NFKD-normalised phrase and passphrase.
//   - Keys: DeriveEd25519 is SLIP-0010 for Ed25519 (hardened indices only), checked
//     against the published vectors; its keys work directly with crypto/ed25519. The
//     fixed paths are PathIdentity (the node's TLS and SSH identity), DevicePath,
//     PathSSHHost, EncryptionPath and PathMsgX25519 (the msg service's X25519 key).
//   - Sealed secrets: EncryptedData is the frozen JSON blob format (AES-256-GCM, fresh
//     nonce, key chosen by key_version and derived from the seed). Vault.Encrypt,
//     Decrypt and Rotate work on it; ParseEncryptedData validates untrusted blobs.
//   - Lifecycle: a Vault starts locked; Unlock (or UnlockKeystore) gives it a seed, Lock
//     wipes the seed and every cached key. Derived keys are cached by (type, path) with
//     a TTL and an LRU bound.
//   - Keystore file: WriteKeystore seals the mnemonic (and an optional BIP39
//     passphrase) with a passphrase — Argon2id, AES-256-GCM with the versioned header as
//     associated data, mode 0600, written atomically — so a node can restart unattended.
//     ReadKeystore refuses unknown versions and parameters outside KeystoreLimits.
//
// Secrets are held in byte slices and wiped (zeroed) on Destroy and Lock; Go cannot
// promise that no copy survives elsewhere (the garbage collector moves memory), so the
// wiping is best effort. Every secret-bearing type (Mnemonic, Seed, ExtendedKey,
// DerivedKey) prints as [Redacted] in every fmt verb, in encoding/json and in log/slog,
// and refuses to be unmarshalled. The package never reads environment variables.
package vault
