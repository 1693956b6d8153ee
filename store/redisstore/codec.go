package redisstore

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/tetherhq/tether"
)

// A record is stored as one Redis string in a compact binary layout. The
// fixed-size head comes first so that the Lua scripts can read the expiry and
// rewrite the last-seen time or the secret hash in place (string.sub), without
// a decoder in Lua:
//
//	off  len  field (integers big-endian; times in Unix microseconds)
//	  0    1  format version (1)
//	  1    8  LastSeenAt
//	  9    8  IdleExpiresAt
//	 17    8  ExpiresAt
//	 25    8  subject generation at creation (see the package doc)
//	 33   32  SecretHash
//	 65    8  CreatedAt
//	 73    8  IdleTimeout (nanoseconds)
//	 81    1  flags (bit 0: AuthTime is set)
//	 82   [8] AuthTime, if flagged
//	  …       Subject, AuthMethod: uvarint length + bytes each;
//	          metadata: uvarint count, then key and value as above;
//	          JKT, if flagged (bit 1): uvarint length + bytes;
//	          DBSC, if flagged (bit 2): uvarint length + bytes;
//	          origin issuer, subject, session ID, if flagged (bit 3): as above.
//
// Microseconds are the finest precision every backend keeps, and they stay
// exact in the doubles Lua computes with until the year 2255.
const (
	formatV1 = 1

	offLastSeen = 1
	offIdle     = 9
	offExpires  = 17
	offGen      = 25
	offHash     = 33
	offCreated  = 65
	offIdleTO   = 73
	offFlags    = 81
	headLen     = 82

	flagAuthTime = 1
	flagJKT      = 2
	flagDBSC     = 4
	flagOrigin   = 8
)

var errCorrupt = errors.New("corrupt session record")

func putTime(b []byte, t time.Time) { binary.BigEndian.PutUint64(b, uint64(t.UnixMicro())) }

func getTime(b []byte) time.Time {
	return time.UnixMicro(int64(binary.BigEndian.Uint64(b))).UTC()
}

// encode returns r's stored form, stamped with the subject generation gen.
func encode(r *tether.Record, gen int64) []byte {
	o := r.Origin
	n := headLen + 8 + 8*binary.MaxVarintLen32 + len(r.Subject) + len(r.AuthMethod) + len(r.JKT) + len(r.DBSC) +
		len(o.Issuer) + len(o.Subject) + len(o.SessionID)
	for k, v := range r.Metadata {
		n += 2*binary.MaxVarintLen32 + len(k) + len(v)
	}
	b := make([]byte, headLen, n)
	b[0] = formatV1
	putTime(b[offLastSeen:], r.LastSeenAt)
	putTime(b[offIdle:], r.IdleExpiresAt)
	putTime(b[offExpires:], r.ExpiresAt)
	binary.BigEndian.PutUint64(b[offGen:], uint64(gen))
	copy(b[offHash:], r.SecretHash[:])
	putTime(b[offCreated:], r.CreatedAt)
	binary.BigEndian.PutUint64(b[offIdleTO:], uint64(r.IdleTimeout))
	if !r.AuthTime.IsZero() {
		b[offFlags] |= flagAuthTime
		b = binary.BigEndian.AppendUint64(b, uint64(r.AuthTime.UnixMicro()))
	}
	b = appendString(b, r.Subject)
	b = appendString(b, r.AuthMethod)
	b = binary.AppendUvarint(b, uint64(len(r.Metadata)))
	for k, v := range r.Metadata {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	if r.JKT != "" {
		b[offFlags] |= flagJKT
		b = appendString(b, r.JKT)
	}
	if r.DBSC != "" {
		b[offFlags] |= flagDBSC
		b = appendString(b, r.DBSC)
	}
	if !o.IsZero() {
		b[offFlags] |= flagOrigin
		b = appendString(appendString(appendString(b, o.Issuer), o.Subject), o.SessionID)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decode parses a stored record and returns it with its generation stamp.
// Stored bytes are not trusted blindly: every length is checked.
func decode(id string, b []byte) (*tether.Record, int64, error) {
	if len(b) < headLen || b[0] != formatV1 {
		return nil, 0, errCorrupt
	}
	r := &tether.Record{
		ID:            id,
		LastSeenAt:    getTime(b[offLastSeen:]),
		IdleExpiresAt: getTime(b[offIdle:]),
		ExpiresAt:     getTime(b[offExpires:]),
		CreatedAt:     getTime(b[offCreated:]),
		IdleTimeout:   time.Duration(binary.BigEndian.Uint64(b[offIdleTO:])),
	}
	gen := int64(binary.BigEndian.Uint64(b[offGen:]))
	copy(r.SecretHash[:], b[offHash:])
	rest := b[headLen:]
	if b[offFlags]&flagAuthTime != 0 {
		if len(rest) < 8 {
			return nil, 0, errCorrupt
		}
		r.AuthTime = getTime(rest)
		rest = rest[8:]
	}
	var ok bool
	if r.Subject, rest, ok = readString(rest); !ok {
		return nil, 0, errCorrupt
	}
	if r.AuthMethod, rest, ok = readString(rest); !ok {
		return nil, 0, errCorrupt
	}
	n, w := binary.Uvarint(rest)
	if w <= 0 || n > uint64(len(rest)) { // each entry takes at least two bytes
		return nil, 0, errCorrupt
	}
	rest = rest[w:]
	if n > 0 {
		r.Metadata = make(map[string]string, n)
	}
	for range n {
		var k, v string
		if k, rest, ok = readString(rest); !ok {
			return nil, 0, errCorrupt
		}
		if v, rest, ok = readString(rest); !ok {
			return nil, 0, errCorrupt
		}
		r.Metadata[k] = v
	}
	if b[offFlags]&flagJKT != 0 {
		if r.JKT, rest, ok = readString(rest); !ok || r.JKT == "" {
			return nil, 0, errCorrupt
		}
	}
	if b[offFlags]&flagDBSC != 0 {
		if r.DBSC, rest, ok = readString(rest); !ok || r.DBSC == "" {
			return nil, 0, errCorrupt
		}
	}
	if b[offFlags]&flagOrigin != 0 {
		for _, f := range []*string{&r.Origin.Issuer, &r.Origin.Subject, &r.Origin.SessionID} {
			if *f, rest, ok = readString(rest); !ok {
				return nil, 0, errCorrupt
			}
		}
	}
	if len(rest) != 0 {
		return nil, 0, errCorrupt
	}
	return r, gen, nil
}

func readString(b []byte) (string, []byte, bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return "", nil, false
	}
	return string(b[w : w+int(n)]), b[w+int(n):], true
}

// touchPatch is the 16 bytes that Touch writes over LastSeenAt and IdleExpiresAt.
func touchPatch(lastSeen, idleExpires time.Time) string {
	var b [16]byte
	putTime(b[0:], lastSeen)
	putTime(b[8:], idleExpires)
	return string(b[:])
}
