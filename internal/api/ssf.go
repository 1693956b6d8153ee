package api

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/tetherhq/tether/internal/httperr"
	"github.com/tetherhq/tether/ssf"
)

// ssfRoutes mounts the Shared Signals transmitter and receiver (DESIGN §11)
// on the public listener.
func (s *Server) ssfRoutes(mux router) {
	mux.Handle("POST /ssf/events", http.HandlerFunc(s.ssfEvents))
	mux.Handle("GET /.well-known/ssf-configuration", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		if s.transmitter == nil {
			return errNoTransmitter
		}
		return writeJSON(w, http.StatusOK, s.transmitter.Metadata())
	}))
	mux.Handle("POST "+ssf.PathStreams, s.ssfClient(func(w http.ResponseWriter, r *http.Request, c *ssf.Client) error {
		var req ssf.StreamConfig
		if err := decodeJSON(w, r, &req); err != nil {
			return err
		}
		out, err := s.transmitter.CreateStream(r.Context(), c, &req)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusCreated, out)
	}))
	mux.Handle("GET "+ssf.PathStreams, s.ssfClient(func(w http.ResponseWriter, r *http.Request, c *ssf.Client) error {
		out, err := s.transmitter.ReadStream(r.Context(), c, r.URL.Query().Get("stream_id"))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, out)
	}))
	for _, method := range []string{http.MethodPatch, http.MethodPut} {
		replace := method == http.MethodPut
		mux.Handle(method+" "+ssf.PathStreams, s.ssfClient(func(w http.ResponseWriter, r *http.Request, c *ssf.Client) error {
			var req ssf.StreamConfig
			if err := decodeJSON(w, r, &req); err != nil {
				return err
			}
			out, err := s.transmitter.UpdateStream(r.Context(), c, &req, replace)
			if err != nil {
				return err
			}
			return writeJSON(w, http.StatusOK, out)
		}))
	}
	mux.Handle("DELETE "+ssf.PathStreams, s.ssfClient(func(w http.ResponseWriter, r *http.Request, c *ssf.Client) error {
		if err := s.transmitter.DeleteStream(r.Context(), c, r.URL.Query().Get("stream_id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	mux.Handle("GET "+ssf.PathStatus, s.ssfClient(func(w http.ResponseWriter, r *http.Request, c *ssf.Client) error {
		out, err := s.transmitter.Status(r.Context(), c, r.URL.Query().Get("stream_id"))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, out)
	}))
	mux.Handle("POST "+ssf.PathStatus, s.ssfClient(func(w http.ResponseWriter, r *http.Request, c *ssf.Client) error {
		var req ssf.StreamStatus
		if err := decodeJSON(w, r, &req); err != nil {
			return err
		}
		out, err := s.transmitter.SetStatus(r.Context(), c, &req)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, out)
	}))
	// SSF 1.0 §8.1.3: 200 on add, 204 on remove.
	subjects := []struct {
		path   string
		status int
		do     func(context.Context, *ssf.Client, *ssf.SubjectRequest) error
	}{
		{ssf.PathAddSubject, http.StatusOK, s.transmitter.AddSubject},
		{ssf.PathRemoveSubject, http.StatusNoContent, s.transmitter.RemoveSubject},
	}
	for _, op := range subjects {
		mux.Handle("POST "+op.path, s.ssfClient(func(w http.ResponseWriter, r *http.Request, c *ssf.Client) error {
			var req ssf.SubjectRequest
			if err := decodeJSON(w, r, &req); err != nil {
				return err
			}
			if err := op.do(r.Context(), c, &req); err != nil {
				return err
			}
			w.WriteHeader(op.status)
			return nil
		}))
	}
	mux.Handle("POST "+ssf.PathVerify, s.ssfClient(func(w http.ResponseWriter, r *http.Request, c *ssf.Client) error {
		var req ssf.VerifyRequest
		if err := decodeJSON(w, r, &req); err != nil {
			return err
		}
		if err := s.transmitter.Verify(r.Context(), c, &req); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	mux.Handle("POST "+ssf.PathPoll, s.ssfClient(func(w http.ResponseWriter, r *http.Request, c *ssf.Client) error {
		var req ssf.PollRequest
		if err := decodeJSON(w, r, &req); err != nil {
			return err
		}
		out, err := s.transmitter.Poll(r.Context(), c, &req)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, out)
	}))
}

// errNoTransmitter: a Server built without a transmitter (serve always has
// one) routes the SSF paths all the same, so every listener's routes match
// its OpenAPI document.
var errNoTransmitter = httperr.New(http.StatusNotFound, httperr.CodeNotFound, "the Shared Signals transmitter is not configured")

// ssfClient runs h for a request with a stream client's bearer token, and
// words the transmitter's errors.
func (s *Server) ssfClient(h func(w http.ResponseWriter, r *http.Request, c *ssf.Client) error) http.Handler {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		if s.transmitter == nil {
			return errNoTransmitter
		}
		c, err := s.transmitter.Authorize(r.Header.Get("Authorization"))
		if err == nil {
			err = h(w, r, c)
		}
		switch {
		case errors.Is(err, ssf.ErrUnauthorized):
			return httperr.Unauthenticated
		case errors.Is(err, ssf.ErrNoStream):
			return httperr.New(http.StatusNotFound, httperr.CodeNotFound, "no such stream")
		case errors.Is(err, ssf.ErrStreamExists):
			return httperr.New(http.StatusConflict, "conflict", "this receiver has a stream already")
		case errors.Is(err, ssf.ErrTooSoon):
			return httperr.RateLimited("verification requested too soon", 0)
		}
		return err
	})
}

// ssfEvents receives a pushed SET (RFC 8935 §2): 202 when accepted; 400
// {"err","description"} when refused; 401 without credentials, 403 with the
// wrong ones; 503 when the store cannot decide, so the transmitter retries.
func (s *Server) ssfEvents(w http.ResponseWriter, r *http.Request) {
	refused := func(code, desc string) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"err": code, "description": desc})
	}
	if s.receiver == nil {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeJSON(w, http.StatusUnauthorized, map[string]string{"err": ssf.ErrCodeAuthentication})
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		refused(ssf.ErrCodeInvalidRequest, "body unreadable or larger than 64 KiB")
		return
	}
	out, err := s.receiver.Receive(r.Context(), r.Header.Get("Authorization"), r.Header.Get("Content-Type"), raw)
	var re *ssf.RefusedError
	switch {
	case errors.As(err, &re):
		refused(re.Code, re.Description)
	case errors.Is(err, ssf.ErrUnauthorized):
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeJSON(w, http.StatusUnauthorized, map[string]string{"err": ssf.ErrCodeAuthentication})
	case errors.Is(err, ssf.ErrForbidden):
		writeJSON(w, http.StatusForbidden, map[string]string{"err": ssf.ErrCodeAuthentication})
	case err != nil:
		s.writeError(w, r, err)
	default:
		s.log.Info("ssf: SET received", "issuer", out.Issuer, "event", out.Event, "revoked", out.Revoked)
		w.WriteHeader(http.StatusAccepted)
	}
}
