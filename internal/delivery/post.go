package delivery

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"
)

// NewClient is the client a Send uses unless configured otherwise: rt (nil:
// the default transport), a 10 s timeout and no redirects (a redirect is a
// failed delivery, so events never go anywhere not configured).
func NewClient(rt http.RoundTripper) *http.Client {
	return &http.Client{
		Transport:     rt,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Post sends body to endpoint with header and returns the status and up to
// 4 KiB of the answer; the rest is read and dropped, so the connection is
// reused. Its errors never hold the URL, whose query may carry a token.
func Post(ctx context.Context, c *http.Client, endpoint string, header http.Header, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, nil, errors.New("cannot make a request to the endpoint")
	}
	req.Header = header
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, answer, nil
}
