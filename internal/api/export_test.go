package api

import "time"

// SetChangesHeartbeat shortens the change stream's heartbeat for a test, until
// the returned function restores it. Call it before starting any server.
func SetChangesHeartbeat(d time.Duration) (restore func()) {
	old := changesHeartbeat
	changesHeartbeat = d
	return func() { changesHeartbeat = old }
}
