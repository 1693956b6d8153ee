package api

import (
	"net/http"
	"strconv"

	"github.com/tetherhq/tether"
)

// eventsResponse is GET /v1/events (DESIGN §10): a page, oldest first, and the
// cursor for the next one.
type eventsResponse struct {
	Events []tether.Event `json:"events"`
	Next   string         `json:"next"`
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) error {
	v := r.URL.Query()
	q := tether.EventQuery{
		Subject: v.Get("subject"), SessionID: v.Get("session_id"), Type: v.Get("type"), After: v.Get("after"),
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 {
			return badRequest("limit must be a positive integer")
		}
		q.Limit = n
	}
	p, err := s.m.Events(r.Context(), q)
	if err != nil {
		return err
	}
	if p.Events == nil {
		p.Events = []tether.Event{}
	}
	return writeJSON(w, http.StatusOK, eventsResponse{Events: p.Events, Next: p.Next})
}
