package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tetherhq/tether/store"
	"github.com/tetherhq/tether/store/boltstore"
)

// Open with an empty URL opens the embedded store in the data dir; Options
// tunes the backend the URL names (tether serve fills them from the file's
// bolt, redis and postgres sections).
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "tether-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	st, err := store.Open(context.Background(), "", dir, store.Options{
		Bolt: boltstore.Options{SweepInterval: 5 * time.Minute, Timeout: 2 * time.Second},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	_, err = os.Stat(filepath.Join(dir, "tether.db"))
	fmt.Println("embedded store file:", err == nil)
	// Output: embedded store file: true
}
