package api

import "time"

// SetChangesHeartbeat shortens the change stream's heartbeat for a test, until
// the returned function restores it. Call it before starting any server.
func SetChangesHeartbeat(d time.Duration) (restore func()) {
	old := changesHeartbeat
	changesHeartbeat = d
	return func() { changesHeartbeat = old }
}

// Routes returns the patterns the listener's handler registered.
func (s *Server) Routes(listener string) []string {
	s.routesMu.Lock()
	defer s.routesMu.Unlock()
	if p := s.routes[listener]; p != nil {
		return append([]string(nil), *p...)
	}
	return nil
}
