// Package keys owns twinroot's signing keys: Ed25519 key pairs, their key
// ids, the two key files and the directory of trusted public keys a device
// bakes into its image.
//
// # Key id
//
// A key id is the first 16 hex digits (8 bytes) of the SHA-256 of the raw
// 32-byte Ed25519 public key. Signatures name the key that made them by
// this id, so a device holding several trusted keys (key rotation through an
// image update) knows which one to check.
//
// # Files
//
// Both files are a single PEM block (RFC 7468 text with RFC 1421 headers),
// nothing before or after it but whitespace:
//
//	NAME.pub (any mode)                        NAME.key (mode 0600, refused otherwise)
//	-----BEGIN TWINROOT PUBLIC KEY-----        -----BEGIN TWINROOT PRIVATE KEY-----
//	Key-Id: 3f2a9c0d81b7e645                   Key-Id: 3f2a9c0d81b7e645
//
//	<base64 of the 32-byte public key>         <base64 of the 32-byte Ed25519 seed>
//	-----END TWINROOT PUBLIC KEY-----          -----END TWINROOT PRIVATE KEY-----
//
// The Key-Id header is checked against the key on every load, so a file
// whose header and key disagree (a hand edit, a mix-up of two files) is
// refused rather than trusted under the wrong name. Unknown headers are
// refused too.
//
// A private key file readable or writable by group or others is refused:
// whoever can read it can publish to every device that trusts it.
//
// # Trusted keys
//
// A device trusts every NAME.pub in one directory of its own image,
// /usr/lib/twinroot/trusted/ (see LoadTrusted); the keys come from the
// image, never from the device config, so only a signed image can change
// which keys a device trusts.
package keys
