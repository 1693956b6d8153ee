package sse

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Block
		wantErr error
	}{
		{"event", "id: e.1\nevent: session\ndata: {\"id\":\"x\"}\n\n",
			[]Block{{ID: "e.1", Type: "session", Data: `{"id":"x"}`}}, io.EOF},
		{"comment only", ": heartbeat\n\n", []Block{{Comments: []string{"heartbeat"}}}, io.EOF},
		{"id carries over", "id: 7\ndata: a\n\ndata: b\n\n",
			[]Block{{ID: "7", Data: "a"}, {ID: "7", Data: "b"}}, io.EOF},
		{"multi-line data, CRLF and CR", "data: a\r\ndata: b\rdata:c\n\n", []Block{{Data: "a\nb\nc"}}, io.EOF},
		{"retry and blank lines", "\n\nretry: 1000\n: hi\n\n", []Block{{Retry: "1000", Comments: []string{"hi"}}}, io.EOF},
		{"id with NUL is ignored", "id: a\x00b\ndata: x\n\n", []Block{{Data: "x"}}, io.EOF},
		{"unknown field", "foo: bar\ndata: x\n\n", []Block{{Data: "x"}}, io.EOF},
		{"cut inside a block", "event: session\ndata: {", nil, io.ErrUnexpectedEOF},
		{"line too long", "data: " + strings.Repeat("x", MaxLine+1), nil, ErrLineTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in))
			var got []Block
			var err error
			for {
				var b Block
				if b, err = r.Next(); err != nil {
					break
				}
				got = append(got, b)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("blocks: got %+v, want %+v", got, tt.want)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error: got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func FuzzReader(f *testing.F) {
	f.Add("id: e.1\nevent: session\ndata: {\"id\":\"x\"}\n\n: heartbeat\n\n")
	f.Add("data: a\r\ndata: b\rretry: 5\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		r := NewReader(strings.NewReader(in))
		for range len(in) + 1 { // every block consumes at least one byte
			b, err := r.Next()
			if err != nil {
				return
			}
			if len(b.Data) > len(in) || strings.ContainsRune(b.ID, 0) {
				t.Fatalf("block %+v from %d bytes", b, len(in))
			}
		}
		t.Fatal("more blocks than bytes")
	})
}
