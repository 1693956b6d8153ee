package boltstore

import (
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/tetherhq/tether"
)

// recordV1 is the first byte of every encoded record, so a later format can
// be told apart and migrated lazily. recordV2 is v1 followed by the DPoP key
// thumbprint; it is written only for a bound session, so that unbound records
// stay readable by a binary that knows only v1. recordV3 adds the DBSC key
// thumbprint, likewise only for a session bound to a browser's key. recordV4
// is v3 (both thumbprints possibly empty) followed by the session's origin,
// written only for a session made from a handshake or an identity provider.
const (
	recordV1 = 1
	recordV2 = 2
	recordV3 = 3
	recordV4 = 4
)

// errCorrupt is wrapped into ErrUnavailable by the caller: a record we cannot
// decode is a storage fault, and validation must fail closed. It carries no
// bytes of the record, which hold a secret hash.
var errCorrupt = errors.New("corrupt record")

// Times are stored as microseconds since the Unix epoch: the precision every
// Tether store keeps, with a range far beyond any session's lifetime (the zero
// time.Time round-trips too). The sign bit is flipped so that big-endian
// encodings sort in time order, which the expiry index relies on.
func appendTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixMicro())^(1<<63))
}

func decodeTime(b []byte) time.Time {
	return time.UnixMicro(int64(binary.BigEndian.Uint64(b) ^ (1 << 63))).UTC()
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// encodeRecord writes r in a compact binary form; the ID is not included, as
// it is the record's key:
//
//	version(1) secretHash(32) created lastSeen expires idleExpires authTime (8 each)
//	idleTimeout(8) subject authMethod (uvarint length + bytes)
//	metadata: uvarint count, then key and value pairs sorted by key
//	v2 only: JKT (uvarint length + bytes)
//	v3 only: JKT, possibly empty, then DBSC (uvarint length + bytes each)
//	v4 only: JKT and DBSC, each possibly empty, then the origin's issuer,
//	subject and session ID (uvarint length + bytes each)
//
// A record is written in the lowest version that holds it, so that records
// without a binding read the same in older releases.
func encodeRecord(r *tether.Record) []byte {
	o := r.Origin
	b := make([]byte, 0, 96+len(r.Subject)+len(r.AuthMethod)+32*len(r.Metadata)+len(r.JKT)+len(r.DBSC)+
		len(o.Issuer)+len(o.Subject)+len(o.SessionID))
	version := byte(recordV1)
	switch {
	case !o.IsZero():
		version = recordV4
	case r.DBSC != "":
		version = recordV3
	case r.JKT != "":
		version = recordV2
	}
	b = append(b, version)
	b = append(b, r.SecretHash[:]...)
	for _, t := range []time.Time{r.CreatedAt, r.LastSeenAt, r.ExpiresAt, r.IdleExpiresAt, r.AuthTime} {
		b = appendTime(b, t)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(r.IdleTimeout))
	b = appendString(b, r.Subject)
	b = appendString(b, r.AuthMethod)
	b = binary.AppendUvarint(b, uint64(len(r.Metadata)))
	for _, k := range slices.Sorted(maps.Keys(r.Metadata)) {
		b = appendString(appendString(b, k), r.Metadata[k])
	}
	if version >= recordV2 {
		b = appendString(b, r.JKT)
	}
	if version >= recordV3 {
		b = appendString(b, r.DBSC)
	}
	if version == recordV4 {
		b = appendString(appendString(appendString(b, o.Issuer), o.Subject), o.SessionID)
	}
	return b
}

// decoder reads what encodeRecord and encodeRoles wrote. The first error
// sticks, so callers check once at the end. Everything it returns is copied
// out of b, which points into bbolt's mmap and dies with the transaction.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) next(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		d.err = errCorrupt
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

// length reads a count or a string length; no valid one exceeds what is left.
func (d *decoder) length() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errCorrupt
		return 0
	}
	return int(n)
}

func (d *decoder) string() string { return string(d.next(d.length())) }

func (d *decoder) time() time.Time {
	if p := d.next(8); p != nil {
		return decodeTime(p)
	}
	return time.Time{}
}

func decodeRecord(id string, b []byte) (*tether.Record, error) {
	d := &decoder{b: b}
	v := d.next(1)
	if d.err == nil && (v[0] < recordV1 || v[0] > recordV4) {
		return nil, errCorrupt
	}
	r := &tether.Record{ID: id}
	copy(r.SecretHash[:], d.next(len(r.SecretHash)))
	r.CreatedAt, r.LastSeenAt, r.ExpiresAt, r.IdleExpiresAt, r.AuthTime = d.time(), d.time(), d.time(), d.time(), d.time()
	if p := d.next(8); p != nil {
		r.IdleTimeout = time.Duration(binary.BigEndian.Uint64(p))
	}
	r.Subject = d.string()
	r.AuthMethod = d.string()
	if n := d.length(); n > 0 {
		r.Metadata = make(map[string]string, n)
		for range n {
			k := d.string()
			r.Metadata[k] = d.string()
		}
	}
	if d.err == nil && v[0] == recordV2 {
		if r.JKT = d.string(); r.JKT == "" {
			return nil, errCorrupt
		}
	}
	if d.err == nil && v[0] == recordV3 {
		r.JKT = d.string()
		if r.DBSC = d.string(); r.DBSC == "" {
			return nil, errCorrupt
		}
	}
	if d.err == nil && v[0] == recordV4 {
		r.JKT, r.DBSC = d.string(), d.string()
		r.Origin = tether.Origin{Issuer: d.string(), Subject: d.string(), SessionID: d.string()}
		if r.Origin.IsZero() {
			return nil, errCorrupt
		}
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, errCorrupt
	}
	return r, nil
}

func encodeRoles(roles []string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(roles)))
	for _, r := range roles {
		b = appendString(b, r)
	}
	return b
}

func decodeRoles(b []byte) ([]string, error) {
	d := &decoder{b: b}
	roles := make([]string, d.length())
	for i := range roles {
		roles[i] = d.string()
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, errCorrupt
	}
	return roles, nil
}
