package main

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/config"
	"github.com/tetherhq/tether/ssf"
)

// startSSF starts the node's Shared Signals transmitter (every node has one:
// its metadata, stream API and pushes to ssf.receivers) and its receiver of
// the ssf.transmitters' SETs (DESIGN §11).
func startSSF(cfg config.Config, m *tether.Manager, st tether.Store, keys *handshake.KeyRing,
	verifier *handshake.Verifier, log *slog.Logger, rt http.RoundTripper) (*ssf.Transmitter, *ssf.Receiver, error) {
	receivers, clients, transmitters, err := cfg.SSF.Load()
	if err != nil {
		return nil, nil, err
	}
	wake, _ := st.(tether.Watcher) // every store is one; without it pushes wait for the poll
	t, err := ssf.NewTransmitter(ssf.TransmitterConfig{
		Issuer: cfg.Issuer, Manager: m, Keys: keys, Receivers: receivers, Clients: clients, Logger: log, Wake: wake,
		Transport:             rt, // trace context on the pushes when tracing is on
		AllowPrivateEndpoints: cfg.SSF.AllowPrivateEndpoints,
	})
	if err != nil {
		return nil, nil, err
	}
	r, err := ssf.NewReceiver(ssf.ReceiverConfig{
		Audience: cfg.Issuer, Manager: m, Transmitters: transmitters, LocalSubjects: verifier.LocalSubjects, Logger: log,
		HTTPClient: &http.Client{Timeout: 5 * time.Second, Transport: rt},
	})
	if err != nil {
		t.Close()
		return nil, nil, err
	}
	return t, r, nil
}
