package httperr_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/httperr"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		cancelled  bool
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{"typed", httperr.BadRequest("field %q is odd", "x"), false, 400, "bad_request", `field "x" is odd`},
		{"typed, wrapped", fmt.Errorf("decoding: %w", httperr.RateLimited("slow down", time.Second)), false, 429, "rate_limited", "slow down"},
		{"invalid token", fmt.Errorf("%w: expired", tether.ErrInvalidToken), false, 401, "unauthenticated", ""},
		{"cross origin", tether.ErrCrossOrigin, false, 403, "cross_origin", "cross-origin request refused"},
		{"bad input with a public message", fmt.Errorf("create: %w", tether.BadInput("subject must be 1 to %d bytes", 256)), false, 400, "bad_request", "subject must be 1 to 256 bytes"},
		{"bad input without one", fmt.Errorf("%w: secret detail", tether.ErrBadInput), false, 400, "bad_request", "bad input"},
		{"not found", tether.ErrNotFound, false, 404, "not_found", "no such session"},
		{"store down", fmt.Errorf("read: %w: redis: dial 10.0.0.7", tether.ErrUnavailable), false, 503, "unavailable", "the session store is unavailable; try again"},
		{"store too slow", fmt.Errorf("read: %w", context.DeadlineExceeded), false, 503, "unavailable", "the session store is unavailable; try again"},
		{"client gone", context.Canceled, true, 503, "unavailable", "request cancelled"},
		{"anything else", errors.New("nil map write at 0xc000"), false, 500, "internal", "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/x", nil)
			if tt.cancelled {
				ctx, cancel := context.WithCancel(r.Context())
				cancel()
				r = r.WithContext(ctx)
			}
			var logs strings.Builder
			e := httperr.Classify(r, tt.err, slog.New(slog.NewTextHandler(&logs, nil)))
			if e.Status != tt.wantStatus || e.Code != tt.wantCode || e.Message != tt.wantMsg {
				t.Errorf("Classify(%v) = %d %q %q, want %d %q %q", tt.err, e.Status, e.Code, e.Message, tt.wantStatus, tt.wantCode, tt.wantMsg)
			}
			if strings.Contains(e.Message, "10.0.0.7") || strings.Contains(e.Message, "0xc000") || strings.Contains(e.Message, "secret") {
				t.Errorf("internal detail reached the client: %q", e.Message)
			}
		})
	}
}

func TestSetHeaders(t *testing.T) {
	h := http.Header{}
	httperr.RateLimited("wait", 300*time.Millisecond).SetHeaders(h)
	if got := h.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After for 300ms: got %q, want 1 (rounded up)", got)
	}
	h = http.Header{}
	httperr.Unauthenticated.SetHeaders(h)
	if got := h.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("WWW-Authenticate on a 401: got %q", got)
	}
}
