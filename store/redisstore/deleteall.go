package redisstore

import (
	"context"
	"strings"

	"github.com/redis/rueidis"
)

// DeleteAll removes every key under the store's prefix, on every node, and
// returns how many it removed: every session, subject and replay-guard key.
// It is for a tool that owns its prefix outright, as `tether bench` owns the
// one it makes up for each run; a deployment's prefix is never one of those.
func (s *Store) DeleteAll(ctx context.Context) (int, error) {
	pattern := globEscaper.Replace(s.prefix) + "*"
	n := 0
	// SCAN is per node; UNLINK one key at a time goes through the main
	// client, which routes each to its slot's primary.
	for _, node := range s.c.Nodes() {
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
			if err != nil {
				return n, unavailable("delete all: scan", err)
			}
			cmds := make(rueidis.Commands, 0, len(e.Elements))
			for _, k := range e.Elements {
				cmds = append(cmds, s.c.B().Unlink().Key(k).Build())
			}
			for _, r := range s.c.DoMulti(ctx, cmds...) {
				d, err := r.AsInt64()
				if err != nil {
					return n, unavailable("delete all: unlink", err)
				}
				n += int(d)
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return n, nil
}

// globEscaper quotes the characters that SCAN MATCH reads as a pattern.
var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
