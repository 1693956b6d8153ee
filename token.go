package tether

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// A token is TokenPrefix, the session ID, the secret and a checksum, all in
// lower-case Crockford base32 (no padding, no look-alike letters, selectable
// with a double click):
//
//	tts_ 0123456789abcdef 0123456789abcdefghjkmnpqrstvwxyz 0123456
//	     ID (80 bits)     secret (160 bits)                CRC-32
//
// The prefix lets secret scanners and log filters spot a leaked token; the
// checksum lets a malformed one be refused without a store read.
const (
	TokenPrefix = "tts_"
	TokenLen    = len(TokenPrefix) + idChars + secretChars + sumChars // 59

	idBytes     = 10
	secretBytes = 20
	idChars     = idBytes * 8 / 5
	secretChars = secretBytes * 8 / 5
	sumChars    = 7 // 32 bits in base32
)

const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"

var b32 = base32.NewEncoding(alphabet).WithPadding(base32.NoPadding)

// inAlphabet[c] reports whether c is a token character. Checking it up front
// keeps parsing canonical: the base32 decoder alone would skip '\r' and '\n'.
var inAlphabet = func() (t [256]bool) {
	for i := range len(alphabet) {
		t[alphabet[i]] = true
	}
	return t
}()

// alphabetIndex[c] is the 5-bit value of token character c (0 for others).
var alphabetIndex = func() (t [256]byte) {
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

func allInAlphabet(s string) bool {
	for i := range len(s) {
		if !inAlphabet[s[i]] {
			return false
		}
	}
	return true
}

// secretHash is what a store keeps instead of a secret.
type secretHash = [sha256.Size]byte

// parsedToken is a syntactically valid token; nothing about it is verified
// yet. It keeps the hash of the secret, computed once, not the secret.
type parsedToken struct {
	id   string
	hash secretHash
}

// newToken returns a fresh token for session id (or a fresh id when id is empty).
func newToken(id string) (token string, p parsedToken) {
	if id == "" {
		id = NewID()
	}
	secret := make([]byte, secretBytes)
	rand.Read(secret) // never fails (crypto/rand since Go 1.24)
	body := TokenPrefix + id + b32.EncodeToString(secret)
	return body + checksum(body), parsedToken{id: id, hash: hashSecret(secret)}
}

// NewID returns a random session ID.
func NewID() string {
	b := make([]byte, idBytes)
	rand.Read(b)
	return b32.EncodeToString(b)
}

// ValidID reports whether s has the shape of a session ID.
func ValidID(s string) bool {
	// idChars characters encode exactly idBytes bytes, so every string of
	// them decodes: the alphabet check is the whole test.
	return len(s) == idChars && allInAlphabet(s)
}

// crc32IEEE is crc32.ChecksumIEEE over a string. Parsing runs on every
// request: viewing the string's bytes in place (ChecksumIEEE only reads
// them) keeps it allocation-free and on the hardware-accelerated CRC.
func crc32IEEE(s string) uint32 {
	return crc32.ChecksumIEEE(unsafe.Slice(unsafe.StringData(s), len(s)))
}

func checksum(body string) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], crc32IEEE(body))
	return b32.EncodeToString(b[:])
}

// checksumOK reports whether sum is the checksum of body, without allocating.
func checksumOK(body, sum string) bool {
	var b [4]byte
	var enc [sumChars]byte
	binary.BigEndian.PutUint32(b[:], crc32IEEE(body))
	b32.Encode(enc[:], b[:])
	return string(enc[:]) == sum
}

// parseToken checks a token's shape and checksum. It never touches a store.
func parseToken(raw string) (parsedToken, error) {
	if len(raw) != TokenLen || raw[:len(TokenPrefix)] != TokenPrefix {
		return parsedToken{}, fmt.Errorf("%w: malformed", ErrInvalidToken)
	}
	body, sum := raw[:TokenLen-sumChars], raw[TokenLen-sumChars:]
	if !checksumOK(body, sum) {
		return parsedToken{}, fmt.Errorf("%w: bad checksum", ErrInvalidToken)
	}
	if !allInAlphabet(body[len(TokenPrefix):]) {
		return parsedToken{}, fmt.Errorf("%w: malformed", ErrInvalidToken)
	}
	id := body[len(TokenPrefix) : len(TokenPrefix)+idChars]
	secret := decodeSecret(body[len(TokenPrefix)+idChars:])
	return parsedToken{id: id, hash: hashSecret(secret[:])}, nil
}

// decodeSecret decodes secretChars characters, all already checked to be in
// the alphabet, into the secret. It is base32 decoding done in place: the
// general decoder costs a fifth of a cached validation.
func decodeSecret(src string) (secret [secretBytes]byte) {
	for g := range secretBytes / 5 { // 8 characters carry 5 bytes
		var v uint64
		for _, c := range []byte(src[8*g : 8*g+8]) {
			v = v<<5 | uint64(alphabetIndex[c])
		}
		for i := range 5 {
			secret[5*g+i] = byte(v >> (32 - 8*i))
		}
	}
	return secret
}

func hashSecret(secret []byte) secretHash { return sha256.Sum256(secret) }

func (p parsedToken) matches(h secretHash) bool {
	return subtle.ConstantTimeCompare(p.hash[:], h[:]) == 1
}

// TokenInfo is what can be learnt from a token offline, without its secret.
type TokenInfo struct {
	Prefix      string `json:"prefix"`
	SessionID   string `json:"session_id,omitempty"`
	Length      int    `json:"length"`
	ChecksumOK  bool   `json:"checksum_ok"`
	Recognised  bool   `json:"recognised"`
	SecretBits  int    `json:"secret_bits,omitempty"`
	Description string `json:"description"`
}

// InspectToken decodes a token offline: its prefix, session ID and whether its
// checksum holds. It never returns the secret.
func InspectToken(raw string) TokenInfo {
	info := TokenInfo{Length: len(raw)}
	if len(raw) >= len(TokenPrefix) && raw[:len(TokenPrefix)] == TokenPrefix {
		info.Prefix = TokenPrefix
	}
	p, err := parseToken(raw)
	// The descriptions say what is wrong, by position, never by quoting the
	// input: it may be some other secret.
	lower := strings.ToLower(raw)
	switch {
	case err == nil:
		info.Recognised, info.ChecksumOK = true, true
		info.SessionID, info.SecretBits = p.id, secretBytes*8
		info.Description = "a well-formed Tether session token; only the server can tell whether it is live"
	case strings.ContainsFunc(raw, unicode.IsSpace):
		info.Description = fmt.Sprintf("malformed: a space or line break at character %d; a token has none (copy it again, whole)",
			utf8.RuneCountInString(raw[:strings.IndexFunc(raw, unicode.IsSpace)])+1)
	case lower != raw && strings.HasPrefix(lower, TokenPrefix):
		info.Description = "malformed: upper-case letters; a Tether token is all lower case (was it retyped or changed?)"
	case info.Prefix == "":
		info.Description = "not a Tether session token (no " + TokenPrefix + " prefix)"
	case len(raw) != TokenLen:
		info.Description = fmt.Sprintf("malformed: %d characters, want %d", len(raw), TokenLen)
	case !allInAlphabet(raw[len(TokenPrefix):]):
		i := strings.IndexFunc(raw[len(TokenPrefix):], func(r rune) bool { return r >= utf8.RuneSelf || !inAlphabet[r] })
		info.Description = fmt.Sprintf("malformed: character %d is not one a token uses (0-9 and a-z without i, l, o, u)", len(TokenPrefix)+i+1)
	default:
		info.Description = "malformed: the checksum does not match (mistyped or altered)"
	}
	return info
}
