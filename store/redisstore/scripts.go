package redisstore

import (
	"crypto/sha1"
	"encoding/hex"

	"github.com/redis/rueidis"
)

// script is a Lua script that also knows its source and SHA-1, so that a
// write can be pipelined with WAIT on one connection (Store.eval).
type script struct {
	*rueidis.Lua
	src, sha string
}

func newScript(src string) *script {
	sum := sha1.Sum([]byte(src))
	return &script{Lua: rueidis.NewLuaScript(src), src: src, sha: hex.EncodeToString(sum[:])}
}

// eventsLua is prepended to every script that writes events (DESIGN §10): the
// events come last in ARGV, as JSON, and go to the stream passed as the key
// after the script's own keys, in the same atomic step as the change. That
// stream is the log itself, or on a Cluster the outbox of the script's slot
// (outbox.go).
//
// addEvents(nkeys, first, subject) writes ARGV[first+1…]. ARGV[first] is
// empty for the log; for an outbox it is an ID at or below which every entry
// is known to be moved into the log: those are trimmed, and solo tells
// whether the outbox then held nothing, so that this script's events are
// the only ones to move. It returns the new entries' IDs, solo (1 or 0) and
// the subject, which each script returns after its own result.
const eventsLua = `
local function addEvents(nkeys, first, subject)
  local key, ids, solo = KEYS[nkeys + 1], {}, 0
  if #ARGV > first and ARGV[first] ~= '' then
    redis.call('XTRIM', key, 'MINID', ARGV[first])
    if redis.call('XLEN', key) == 0 then solo = 1 end
  end
  for i = first + 1, #ARGV do
    ids[#ids + 1] = redis.call('XADD', key, '*', 'e', ARGV[i], 's', subject)
  end
  return ids, solo, subject
end
`

// recSubject reads the subject out of a stored record (codec.go): after the
// 82-byte head and the optional 8-byte AuthTime, a uvarint length and the bytes.
//
// expiryMember is the record's member in the expiry index (expiry.go,
// expiryMember): the id's length as a byte, the id, ExpiresAt (bytes 18–25)
// and the subject.
const recordLua = `
local function recSubject(v)
  local off = 83
  if string.byte(v, 82) % 2 == 1 then off = off + 8 end
  local n, mul = 0, 1
  while true do
    local b = string.byte(v, off)
    off = off + 1
    n = n + (b % 128) * mul
    if b < 128 then break end
    mul = mul * 128
  end
  return string.sub(v, off, off + n - 1)
end
local function expiryMember(id, v)
  return string.char(#id) .. id .. string.sub(v, 18, 25) .. recSubject(v)
end
`

// createScript is Create's atomic moment: the record is written if its ID is
// free, with its expiry index entry (expiry.go) and its events.
//
// KEYS[1] record, KEYS[2] expiry index, KEYS[3] event stream; ARGV[1]
// encoded record, ARGV[2] expiry (Unix ms), ARGV[3] subject, ARGV[4] id,
// ARGV[5] the record's end (Unix µs), ARGV[6…] events (with addEvents' ID).
var createScript = newScript(eventsLua + recordLua + `
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PXAT', ARGV[2]) then return false end
redis.call('ZADD', KEYS[2], ARGV[5], expiryMember(ARGV[4], ARGV[1]))
return {1, addEvents(2, 6, ARGV[3])}
`)

// appendScript writes events that accompany no change.
//
// KEYS[1] event stream; ARGV[1] empty, ARGV[2…] events.
var appendScript = newScript(eventsLua + recordLua + `
addEvents(0, 1, '')
return 1
`)

// Every script touches keys of one hash slot only, so each runs atomically on
// one node of a Cluster. Lua cannot print a Unix-microsecond time as a plain
// integer with tostring, so numbers go back to Redis through string.format.
//
// Byte positions in the record (Lua is 1-based; see codec.go): LastSeenAt 2–9,
// IdleExpiresAt 10–17, ExpiresAt 18–25, generation 26–33, SecretHash 34–65.

// stampScript runs first in Create, on the subject's slot: it returns the
// subject's current generation, creating the subject state if needed, and
// makes sure that state outlives the new record (its expiry only grows).
//
// KEYS[1] subject state; ARGV[1] record's absolute expiry, Unix ms.
var stampScript = newScript(`
local g = redis.call('HGET', KEYS[1], 'g')
if not g then
  g = '0'
  redis.call('HSET', KEYS[1], 'g', g)
end
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIREAT', KEYS[1], ARGV[1])
else
  redis.call('PEXPIREAT', KEYS[1], ARGV[1], 'GT')
end
return g
`)

// indexScript runs last in Create: it lists the record in the subject's index
// and makes the index outlive it. A script, so that the index never exists
// without an expiry.
//
// KEYS[1] subject index; ARGV[1] score (CreatedAt, Unix µs), ARGV[2] id,
// ARGV[3] record's absolute expiry, Unix ms.
var indexScript = newScript(`
redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
else
  redis.call('PEXPIREAT', KEYS[1], ARGV[3], 'GT')
end
return 1
`)

// touchScript slides a live record's idle expiry, and its expiry index entry
// with it, and returns the record as it was; nil if there is no live one.
// Liveness is judged by the caller's clock (ARGV[3]), so a record that the
// service considers expired is never revived even if Redis, by its own
// clock, has not dropped it yet. The key's TTL never goes past the record's
// absolute expiry.
//
// KEYS[1] record, KEYS[2] expiry index; ARGV[1] 16 bytes: new LastSeenAt and
// IdleExpiresAt; ARGV[2] new idle expiry, Unix ms; ARGV[3] now, Unix µs;
// ARGV[4] new idle expiry, Unix µs; ARGV[5] id.
var touchScript = newScript(recordLua + `
local v = redis.call('GET', KEYS[1])
if not v then return false end
local now = tonumber(ARGV[3])
local exp = struct.unpack('>i8', v, 18)
if struct.unpack('>i8', v, 10) <= now or exp <= now then return false end
local at = tonumber(ARGV[2])
local expms = math.ceil(exp / 1000)
if expms < at then at = expms end
redis.call('SET', KEYS[1], string.sub(v, 1, 1) .. ARGV[1] .. string.sub(v, 18), 'PXAT', string.format('%.0f', at))
local ends = tonumber(ARGV[4])
if exp < ends then ends = exp end
redis.call('ZADD', KEYS[2], 'XX', string.format('%.0f', ends), expiryMember(ARGV[5], v))
return v
`)

// rotateScript swaps the secret hash of a live record if it still equals the
// old one, and announces the change in the same atomic step. It returns the
// record as it was, or nil.
//
// KEYS[1] record; ARGV[1] old hash, ARGV[2] new hash, ARGV[3] now (Unix µs),
// ARGV[4] change channel, ARGV[5] message, ARGV[6…] events (with
// addEvents' ID); KEYS[2] event stream.
var rotateScript = newScript(eventsLua + recordLua + `
local v = redis.call('GET', KEYS[1])
if not v then return false end
local now = tonumber(ARGV[3])
if struct.unpack('>i8', v, 10) <= now or struct.unpack('>i8', v, 18) <= now then return false end
if string.sub(v, 34, 65) ~= ARGV[1] then return false end
redis.call('SET', KEYS[1], string.sub(v, 1, 33) .. ARGV[2] .. string.sub(v, 66), 'KEEPTTL')
redis.call('PUBLISH', ARGV[4], ARGV[5])
return {v, addEvents(1, 6, recSubject(v))}
`)

// deleteScript deletes a live record (by the caller's clock) with its expiry
// index entry, announces it, writes its events, and returns the record as it
// was (nil if there was none), so the caller can tell whether it was live. A
// record already dead by the caller's clock is left to the expiry sweep
// (expiry.go): it is reported expired, never revoked.
//
// KEYS[1] record, KEYS[2] expiry index, KEYS[3] event stream; ARGV[1]
// change channel, ARGV[2] message, ARGV[3] now (Unix µs), ARGV[4] id,
// ARGV[5…] events (with addEvents' ID).
var deleteScript = newScript(eventsLua + recordLua + `
local v = redis.call('GET', KEYS[1])
if not v then return false end
local now = tonumber(ARGV[3])
if struct.unpack('>i8', v, 10) <= now or struct.unpack('>i8', v, 18) <= now then
  return {v, {}, 0, ''}
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], expiryMember(ARGV[4], v))
redis.call('PUBLISH', ARGV[1], ARGV[2])
return {v, addEvents(2, 5, recSubject(v))}
`)

// cleanupScript deletes a record that DeleteSubject revoked, with its expiry
// index entry, and returns it; nil if it was gone or already dead by the
// caller's clock (now, taken before the revoke), which the expiry sweep
// then reports as expired.
//
// KEYS[1] record, KEYS[2] expiry index; ARGV[1] id, ARGV[2] now (Unix µs).
var cleanupScript = newScript(recordLua + `
local v = redis.call('GET', KEYS[1])
if not v then return false end
local now = tonumber(ARGV[2])
if struct.unpack('>i8', v, 10) <= now or struct.unpack('>i8', v, 18) <= now then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], expiryMember(ARGV[1], v))
return v
`)

// expireScript records the expiry of sessions whose expiry index entries the
// sweep found due (expiry.go): for each entry still in the index with the
// same end, whose record is gone, dead by the caller's clock, or another
// session's (a Create that reused the ID once it expired), it removes the
// entry and the record if it is the entry's, and writes the event. It
// returns the IDs of the events written.
//
// KEYS[1] expiry index, KEYS[2] event stream, KEYS[3…] the entries' records;
// ARGV[1] now (Unix µs), then for each entry its member, its end (Unix µs)
// and its event (empty: none).
var expireScript = newScript(recordLua + `
local now = tonumber(ARGV[1])
local written = {}
for i = 2, #ARGV, 3 do
  local member, rec = ARGV[i], KEYS[3 + (i - 2) / 3]
  local ends = redis.call('ZSCORE', KEYS[1], member)
  if ends and tonumber(ends) == tonumber(ARGV[i + 1]) then
    local v = redis.call('GET', rec)
    local own = v and expiryMember(string.sub(member, 2, 1 + string.byte(member, 1)), v) == member
    if not own or struct.unpack('>i8', v, 10) <= now or struct.unpack('>i8', v, 18) <= now then
      redis.call('ZREM', KEYS[1], member)
      if own then redis.call('DEL', rec) end
      if ARGV[i + 2] ~= '' then
        written[#written + 1] = redis.call('XADD', KEYS[2], '*', 'e', ARGV[i + 2], 's', '')
      end
    end
  end
end
return written
`)

// revokeScript is DeleteSubject's atomic moment: it bumps the subject's
// generation, which kills every record stamped with an older one, adopts the
// kept session into the new generation if it was current, empties the index
// but for the kept session, and announces the change. It returns the old
// generation, the old kept id and the ids taken off the index, whose records
// the caller then deletes (already dead, so at leisure) and counts.
//
// A subject without state has no records (Create makes the state first, and
// the state outlives every record), so there is nothing to revoke.
//
// KEYS[1] subject state, KEYS[2] subject index; ARGV[1] id to keep (may be empty),
// ARGV[2] its record's generation, or -1 if it is not a live record of this
// subject; ARGV[3] change channel, ARGV[4] message, ARGV[5] subject, ARGV[6…]
// events (with addEvents' ID); KEYS[3] event stream.
var revokeScript = newScript(eventsLua + recordLua + `
local st = redis.call('HMGET', KEYS[1], 'g', 'k')
local removed = {}
if st[1] then
  local old = tonumber(st[1])
  redis.call('HINCRBY', KEYS[1], 'g', 1)
  redis.call('HDEL', KEYS[1], 'k')
  local keep = ARGV[1]
  local kg = tonumber(ARGV[2])
  if keep ~= '' and kg >= 0 and (kg >= old or st[2] == keep) then
    redis.call('HSET', KEYS[1], 'k', keep)
  else
    keep = ''
  end
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if id ~= keep then removed[#removed + 1] = id end
  end
  for i = 1, #removed, 1000 do
    redis.call('ZREM', KEYS[2], unpack(removed, i, math.min(i + 999, #removed)))
  end
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return {{st[1], st[2], removed}, addEvents(2, 6, ARGV[5])}
`)

// rolesScript replaces a subject's roles (none deletes the key) and announces it.
//
// KEYS[1] roles, KEYS[2] event stream; ARGV[1] encoded roles (empty for
// none), ARGV[2] change channel, ARGV[3] message, ARGV[4] subject, ARGV[5…]
// events (with addEvents' ID).
var rolesScript = newScript(eventsLua + recordLua + `
if ARGV[1] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return {1, addEvents(1, 5, ARGV[4])}
`)

// collectScript moves events from Cluster outboxes into the log (outbox.go),
// exactly once whatever other collectors run: an entry is appended only if
// its outbox ID is past its slot's recorded progress, and the progress moves
// in the same atomic step. It returns each named slot and its progress.
//
// Stream IDs ("ms-seq") are compared as numbers: both parts stay far below
// 2^53, where Lua's doubles are exact.
//
// KEYS[1] event log, KEYS[2] progress hash (field: slot, value: outbox ID);
// ARGV segments in the order to append: slot, count n, then n times the
// outbox ID, event JSON and subject.
var collectScript = newScript(`
local function less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, bm = tonumber(am), tonumber(bm)
  if am ~= bm then return am < bm end
  return tonumber(as) < tonumber(bs)
end
local prog, slots, moved = {}, {}, {}
local i = 1
while i <= #ARGV do
  local slot, n = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  if not prog[slot] then
    prog[slot] = redis.call('HGET', KEYS[2], slot) or '0-0'
    slots[#slots + 1] = slot
  end
  for _ = 1, n do
    if less(prog[slot], ARGV[i]) then
      redis.call('XADD', KEYS[1], '*', 'e', ARGV[i + 1], 's', ARGV[i + 2])
      prog[slot] = ARGV[i]
      moved[slot] = true
    end
    i = i + 3
  end
end
local out = {}
for _, slot in ipairs(slots) do
  if moved[slot] then redis.call('HSET', KEYS[2], slot, prog[slot]) end
  out[#out + 1] = slot
  out[#out + 1] = prog[slot]
end
return out
`)
