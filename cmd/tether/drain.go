package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tetherhq/tether/internal/config"
	"github.com/tetherhq/tether/internal/server"
)

// drainAndShutdown stops a node the way DESIGN §13 says: /readyz answers 503
// for the drain delay, so load balancers stop sending; then the listeners
// close and in-flight requests get up to the shutdown timeout to finish.
// errc carries the listeners' Serve results; one ending early cuts the delay
// short.
func drainAndShutdown(servers []*server.Server, lim config.Server, errc <-chan error, log *slog.Logger) {
	for _, s := range servers {
		s.Drain()
	}
	if lim.DrainDelay > 0 {
		log.Info("draining: /readyz answers 503", "for", lim.DrainDelay)
		t := time.NewTimer(lim.DrainDelay)
		select {
		case <-t.C:
		case <-errc:
			t.Stop()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), lim.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() {
			if err := s.Shutdown(ctx); err != nil {
				log.Warn("shutdown timeout passed; cut the requests still running", "timeout", lim.ShutdownTimeout)
			}
		})
	}
	wg.Wait()
}
