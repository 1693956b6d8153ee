package boltstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
)

// TestFullDisk fills the file system under an open store (DESIGN §13): writes
// must fail with ErrUnavailable and ErrStorageFull, saying so; reads must go
// on; and once space returns, writes must succeed again on the same open
// store, with every acknowledged write kept and the file consistent.
func TestFullDisk(t *testing.T) {
	dir := servicetest.SmallFS(t, 8<<20)
	path := filepath.Join(dir, "tether.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	now := time.Now()
	acked := map[string]*tether.Record{}
	create := func(subject string) error {
		r := newRecord(subject, now, time.Hour)
		err := s.Create(ctx, r)
		if err == nil {
			acked[r.ID] = r
		}
		return err
	}
	for i := range 20 {
		if err := create(fmt.Sprint("user", i%5)); err != nil {
			t.Fatalf("Create before the disk filled: %v", err)
		}
	}
	if err := s.SetRoles(ctx, "user0", []string{"admin"}); err != nil {
		t.Fatal(err)
	}

	free := servicetest.FillFS(t, dir)
	// Commits reuse freed pages until the tree needs one the disk cannot give.
	var fullErr error
	for i := 0; i < 100_000 && fullErr == nil; i++ {
		fullErr = create(fmt.Sprint("user", i%5))
	}
	if fullErr == nil {
		t.Fatalf("100,000 creates on a full disk all succeeded")
	}
	if !errors.Is(fullErr, tether.ErrUnavailable) || !errors.Is(fullErr, tether.ErrStorageFull) ||
		!strings.Contains(fullErr.Error(), "no space left on device") {
		t.Errorf("a write on a full disk: got %v, want ErrUnavailable and ErrStorageFull naming the cause", fullErr)
	}
	t.Logf("full disk after %d acknowledged creates: %v", len(acked), fullErr)

	// Reads go on.
	for id := range acked {
		if _, err := s.Get(ctx, id); err != nil {
			t.Fatalf("Get on a full disk: %v", err)
		}
	}
	if recs, err := s.List(ctx, "user0"); err != nil || len(recs) == 0 {
		t.Errorf("List on a full disk: %d records, %v", len(recs), err)
	}
	if roles, err := s.Roles(ctx, "user0"); err != nil || len(roles) != 1 {
		t.Errorf("Roles on a full disk: %v, %v; want [admin]", roles, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping on a full disk: %v", err)
	}

	// Space returns: writes resume without a reopen.
	free()
	for i := range 50 {
		if err := create(fmt.Sprint("later", i)); err != nil {
			t.Fatalf("Create after space returned: %v", err)
		}
	}
	var gone string
	for id := range acked {
		gone = id
		break
	}
	if err := s.Delete(ctx, gone); err != nil {
		t.Fatalf("Delete after space returned: %v", err)
	}
	delete(acked, gone)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Nothing acknowledged was lost and the file is consistent.
	checkFile(t, path)
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	for id := range acked {
		if _, err := s2.Get(ctx, id); err != nil {
			t.Errorf("acknowledged session %s after the reopen: %v", id, err)
		}
	}
	if _, err := s2.Get(ctx, gone); !errors.Is(err, tether.ErrNotFound) {
		t.Errorf("deleted session after the reopen: got %v, want ErrNotFound", err)
	}
}
