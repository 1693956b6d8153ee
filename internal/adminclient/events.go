package adminclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tetherhq/tether"
)

// Events returns one page of the audit log, oldest first, and the cursor for
// the next page (pass it back as q.After).
func (c *Client) Events(ctx context.Context, q tether.EventQuery) (tether.EventPage, error) {
	v := url.Values{}
	for k, s := range map[string]string{"subject": q.Subject, "session_id": q.SessionID, "type": q.Type, "after": q.After} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out struct {
		Events []tether.Event `json:"events"`
		Next   string         `json:"next"`
	}
	if err := c.doJSON(ctx, http.MethodGet, "/v1/events?"+v.Encode(), nil, http.StatusOK, &out); err != nil {
		return tether.EventPage{}, err
	}
	return tether.EventPage{Events: out.Events, Next: out.Next}, nil
}
