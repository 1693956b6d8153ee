package tether_test

import (
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
)

// The token format, written out again independently of token.go, so that a
// change to the wire format fails here instead of passing silently.
const testAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

var testB32 = base32.NewEncoding(testAlphabet).WithPadding(base32.NoPadding)

func testChecksum(body string) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], crc32.ChecksumIEEE([]byte(body)))
	return testB32.EncodeToString(b[:])
}

// newTokens creates n sessions and returns their tokens and IDs.
func newTokens(t testing.TB, n int) (tokens, ids []string) {
	t.Helper()
	m, err := tether.NewManager(tether.Config{Store: memstore.New(), MaxStaleness: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for range n {
		tok, s, err := m.Create(ctx, tether.CreateParams{Subject: "alice"})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		tokens, ids = append(tokens, tok), append(ids, s.ID)
	}
	return tokens, ids
}

func TestTokenShape(t *testing.T) {
	if tether.TokenLen != 59 || tether.TokenLen > 64 {
		t.Fatalf("TokenLen = %d, want 59 (and at most 64)", tether.TokenLen)
	}
	tokens, ids := newTokens(t, 2000)
	seenTok, seenID := map[string]bool{}, map[string]bool{}
	for i, tok := range tokens {
		if !strings.HasPrefix(tok, "tts_") {
			t.Fatalf("token %q: want prefix tts_", tok)
		}
		if len(tok) != 59 {
			t.Fatalf("token %q: length %d, want 59", tok, len(tok))
		}
		if i := strings.IndexFunc(tok[4:], func(r rune) bool { return !strings.ContainsRune(testAlphabet, r) }); i >= 0 {
			t.Fatalf("token %q: character %q outside the alphabet %s", tok, tok[4+i], testAlphabet)
		}
		if tok[4:20] != ids[i] || !tether.ValidID(ids[i]) {
			t.Fatalf("token %q: session ID %q, want %q at [4:20]", tok, tok[4:20], ids[i])
		}
		if got, want := tok[52:], testChecksum(tok[:52]); got != want {
			t.Fatalf("token %q: checksum %q, want %q", tok, got, want)
		}
		secret, err := testB32.DecodeString(tok[20:52])
		if err != nil || len(secret) < 16 {
			t.Fatalf("token %q: secret decodes to %d bytes (%v), want at least 128 bits", tok, len(secret), err)
		}
		if seenTok[tok] || seenID[ids[i]] {
			t.Fatalf("token or ID repeated after %d tokens: %q", i, tok)
		}
		seenTok[tok], seenID[ids[i]] = true, true
	}
}

// Every single-character substitution must break the checksum, so a typo or
// a careless edit is refused without a store read. CRC-32 detects every burst
// of up to 32 bits, and one base32 character is 5 bits.
func TestChecksumCatchesEverySubstitution(t *testing.T) {
	tokens, _ := newTokens(t, 20)
	for _, tok := range tokens {
		for i := len(tether.TokenPrefix); i < len(tok); i++ {
			for _, c := range []byte(testAlphabet) {
				if c == tok[i] {
					continue
				}
				bad := tok[:i] + string(c) + tok[i+1:]
				if info := tether.InspectToken(bad); info.ChecksumOK || info.Recognised {
					t.Fatalf("substituting %q at %d in %q: InspectToken = %+v, want checksum failure", c, i, tok, info)
				}
			}
		}
	}
}

func TestValidID(t *testing.T) {
	_, ids := newTokens(t, 1)
	tests := []struct {
		id   string
		want bool
	}{
		{ids[0], true},
		{"0123456789abcdef", true},
		{"", false},
		{"0123456789abcde", false},
		{"0123456789abcdef0", false},
		{"0123456789ABCDEF", false},
		{"0123456789abcdeu", false}, // u is not in the alphabet
		{"0123456789abcde\n", false},
		{"0123456789abcd\r\n", false},
		{"0123456789abcde=", false},
	}
	for _, tt := range tests {
		if got := tether.ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestInspectToken(t *testing.T) {
	tokens, ids := newTokens(t, 1)
	tok := tokens[0]
	secret := tok[20:52]
	tampered := tok[:30] + "z" + tok[31:]
	if tampered == tok {
		tampered = tok[:30] + "y" + tok[31:]
	}
	tests := []struct {
		name  string
		raw   string
		want  tether.TokenInfo
		descr string // a word the description must contain
	}{
		{"valid", tok, tether.TokenInfo{Prefix: "tts_", SessionID: ids[0], Length: 59, ChecksumOK: true, Recognised: true, SecretBits: 160}, "well-formed"},
		{"tampered", tampered, tether.TokenInfo{Prefix: "tts_", Length: 59}, "checksum"},
		{"truncated", tok[:40], tether.TokenInfo{Prefix: "tts_", Length: 40}, "40"},
		{"foreign", "eyJhbGciOiJIUzI1NiJ9.e30.sig", tether.TokenInfo{Length: 28}, "not a Tether"},
		{"empty", "", tether.TokenInfo{}, "not a Tether"},
		{"upper case", strings.ToUpper(tok), tether.TokenInfo{Length: 59}, "lower case"},
		{"space inside", tok[:10] + " " + tok[10:], tether.TokenInfo{Prefix: "tts_", Length: 60}, "space or line break at character 11"},
		{"leading space", " " + tok, tether.TokenInfo{Length: 60}, "at character 1"},
		{"line break", tok[:58] + "\n", tether.TokenInfo{Prefix: "tts_", Length: 59}, "line break"},
		{"look-alike letter", tok[:30] + "l" + tok[31:], tether.TokenInfo{Prefix: "tts_", Length: 59}, "character 31 is not one a token uses"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tether.InspectToken(tt.raw)
			if !strings.Contains(got.Description, tt.descr) {
				t.Errorf("Description = %q, want it to mention %q", got.Description, tt.descr)
			}
			got.Description = ""
			if got != tt.want {
				t.Errorf("InspectToken = %+v, want %+v", got, tt.want)
			}
			out, err := json.Marshal(tether.InspectToken(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			if tt.raw != "" && (strings.Contains(string(out), secret) || strings.Contains(string(out), tt.raw[min(20, len(tt.raw)):])) {
				t.Errorf("InspectToken output %s contains the secret", out)
			}
		})
	}
}

// FuzzParseToken feeds arbitrary strings to the token parser (through
// InspectToken, which does nothing else) and to Validate. Nothing may panic;
// whatever is accepted must be canonical: it re-encodes to itself with a
// valid checksum. Whatever is refused must cost no store read.
func FuzzParseToken(f *testing.F) {
	tokens, _ := newTokens(f, 2)
	for _, tok := range tokens {
		f.Add(tok)
		f.Add(tok[:58])
		f.Add(strings.ToUpper(tok))
	}
	f.Add("")
	f.Add("tts_")
	f.Add(strings.Repeat("0", 59))
	f.Add(tokenFor("0000000000000000", make([]byte, 20)))

	e := newEnv(f, tether.Config{MaxStaleness: -1}, false)
	f.Fuzz(func(t *testing.T, raw string) {
		info := tether.InspectToken(raw)
		before := e.store.gets.Load()
		s, err := e.m.Validate(ctx, raw)
		reads := e.store.gets.Load() - before
		if err == nil || s != nil {
			t.Fatalf("Validate(%q) = %+v, %v; want ErrInvalidToken (the store is empty)", raw, s, err)
		}
		if !info.Recognised {
			if reads != 0 {
				t.Fatalf("Validate(%q) read the store %d times for a token the parser refuses", raw, reads)
			}
			return
		}
		if len(raw) != tether.TokenLen || !strings.HasPrefix(raw, tether.TokenPrefix) {
			t.Fatalf("accepted %q: wrong length or prefix", raw)
		}
		id, err1 := testB32.DecodeString(raw[4:20])
		secret, err2 := testB32.DecodeString(raw[20:52])
		if err1 != nil || err2 != nil {
			t.Fatalf("accepted %q, which does not decode: %v, %v", raw, err1, err2)
		}
		body := tether.TokenPrefix + testB32.EncodeToString(id) + testB32.EncodeToString(secret)
		if again := body + testChecksum(body); again != raw {
			t.Fatalf("accepted %q, which re-encodes to %q", raw, again)
		}
		if info.SessionID != raw[4:20] || !tether.ValidID(info.SessionID) {
			t.Fatalf("accepted %q with session ID %q", raw, info.SessionID)
		}
	})
}
