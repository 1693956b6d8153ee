package ssf

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/tetherhq/tether/internal/delivery"
)

// A push endpoint named through the stream management API comes from an
// outside receiver, so the node must not be made to send requests into its
// own network (SSRF): such an endpoint is https to a public address, checked
// when the stream is set and again at every dial, after DNS resolution (so a
// name that later resolves inside is refused too). Receivers in the
// configuration are the operator's and may be anything CheckURL accepts.

var errPrivateEndpoint = errors.New("ssf: the push endpoint is not a public address")

// checkClientEndpoint accepts https URLs whose host is a name or a public IP.
func checkClientEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return errPrivateEndpoint
	}
	host := strings.ToLower(u.Hostname())
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return errPrivateEndpoint
	}
	if ip, err := netip.ParseAddr(host); err == nil && !public(ip) {
		return errPrivateEndpoint
	}
	return nil
}

// public reports whether ip is a global unicast address outside the private,
// loopback and link-local ranges.
func public(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast()
}

// publicClient is the HTTP client for endpoints set through the API: it
// dials public addresses only, and otherwise behaves as delivery's client.
func publicClient() *http.Client {
	d := &net.Dialer{
		Timeout: 10 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !public(ap.Addr()) {
				return errPrivateEndpoint
			}
			return nil
		},
	}
	return delivery.NewClient(&http.Transport{DialContext: d.DialContext, TLSHandshakeTimeout: 10 * time.Second, ForceAttemptHTTP2: true})
}
