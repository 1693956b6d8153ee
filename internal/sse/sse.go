// Package sse reads a text/event-stream (the WHATWG HTML "server-sent events"
// format): what the remote client and the tests of GET /v1/changes read.
package sse

import (
	"bufio"
	"errors"
	"io"
	"strings"
)

// MaxLine bounds one line of the stream; a longer one is an error rather
// than unbounded memory.
const MaxLine = 64 << 10

// ErrLineTooLong: a line exceeded MaxLine.
var ErrLineTooLong = errors.New("sse: line too long")

// Block is one dispatched block of the stream: an event (Data or Type set) or
// only comments, such as a heartbeat. ID is the stream's last event ID as of
// this block, which per the format carries over from earlier blocks.
type Block struct {
	ID, Type, Data string
	Comments       []string
	Retry          string
}

// IsEvent reports whether the block dispatches an event; the format dispatches
// only blocks with data, and "message" is the type of one that names none.
func (b Block) IsEvent() bool { return b.Data != "" || b.Type != "" }

// Reader reads blocks from a stream.
type Reader struct {
	r      *bufio.Reader
	lastID string
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 4096)} }

// Next returns the next non-empty block, or the error that ended the stream
// (io.EOF when it ended between blocks, io.ErrUnexpectedEOF inside one).
func (r *Reader) Next() (Block, error) {
	var b Block
	var data []string
	seen := false
	for {
		line, err := r.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) && seen {
				return Block{}, io.ErrUnexpectedEOF
			}
			return Block{}, err
		}
		if line == "" {
			if !seen {
				continue
			}
			b.Data = strings.Join(data, "\n")
			b.ID = r.lastID
			return b, nil
		}
		seen = true
		if c, ok := strings.CutPrefix(line, ":"); ok {
			b.Comments = append(b.Comments, strings.TrimPrefix(c, " "))
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			b.Type = value
		case "data":
			data = append(data, value)
		case "id":
			if !strings.ContainsRune(value, 0) {
				r.lastID = value
			}
		case "retry":
			b.Retry = value
		}
	}
}

// readLine reads one line ended by LF, CRLF or CR, without its ending.
func (r *Reader) readLine() (string, error) {
	var sb strings.Builder
	for {
		c, err := r.r.ReadByte()
		if err != nil {
			return "", err
		}
		switch c {
		case '\n':
			return sb.String(), nil
		case '\r':
			if next, err := r.r.Peek(1); err == nil && next[0] == '\n' {
				r.r.ReadByte()
			}
			return sb.String(), nil
		}
		if sb.Len() >= MaxLine {
			return "", ErrLineTooLong
		}
		sb.WriteByte(c)
	}
}
