package forwardauth

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/tetherhq/tether"
)

// ErrBadRequest: the proxy's description of the original request cannot be
// read safely. Callers answer 400: a guess could let through what a rule
// meant to refuse.
var ErrBadRequest = errors.New("forwardauth: bad original request")

// badRequest is an ErrBadRequest whose message, made as by fmt.Sprintf, may
// be shown to the client.
func badRequest(format string, args ...any) error {
	return &tether.PublicError{Kind: ErrBadRequest, Message: fmt.Sprintf(format, args...)}
}

// MaxURILen bounds the original request URI; longer ones are refused.
const MaxURILen = 8 << 10

// original is the request a proxy asks about.
type original struct {
	Method   string // upper case, one of the HTTP methods of RFC 9110 and RFC 5789
	Scheme   string // "http" or "https"
	Host     string // lower case, port included if the client gave one
	URI      string // path and query as the client sent them (validated)
	Path     string // URI's path, normalised for matching (see the package doc)
	ClientIP netip.Addr
}

// url is the original absolute URL, as the browser asked for it.
func (o *original) url() string { return o.Scheme + "://" + o.Host + o.URI }

// hostname is Host without its port (and an IPv6 literal without brackets).
// Host has been checked by cleanHost.
func (o *original) hostname() string {
	h := o.Host
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
}

var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodConnect: true,
	http.MethodOptions: true, http.MethodTrace: true,
}

// readOriginal rebuilds the original request from r. The proxy headers count
// only when trusted (the TCP peer is a trusted proxy); otherwise r describes
// itself, with the path after prefix (Envoy's form) as its URI.
func readOriginal(r *http.Request, prefix string, trusted bool, peer netip.Addr) (original, error) {
	o := original{Method: r.Method, Scheme: "http", Host: r.Host, ClientIP: peer}
	if r.TLS != nil {
		o.Scheme = "https"
	}
	o.URI = "/"
	if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), prefix); ok && rest != "" {
		o.URI = rest
		if r.URL.RawQuery != "" {
			o.URI += "?" + r.URL.RawQuery
		}
	}
	if trusted {
		h := r.Header
		// nginx sends X-Original-*, and passes on whatever the client sent:
		// a client's own X-Forwarded-Uri beside them would be read first and
		// could pick a friendlier rule. One form or the other, never both.
		if (get(h, "X-Original-Method") != "" || get(h, "X-Original-Uri") != "") &&
			(get(h, "X-Forwarded-Method") != "" || get(h, "X-Forwarded-Uri") != "") {
			return original{}, badRequest("both X-Forwarded-Method/Uri and X-Original-Method/URI describe the request: the proxy must send one form (see docs/proxies.md)")
		}
		if v := first(h, "X-Forwarded-Method", "X-Original-Method"); v != "" {
			o.Method = v
		}
		if v := get(h, "X-Forwarded-Proto"); v != "" {
			v, _, _ = strings.Cut(v, ",") // a chain of proxies: the first met the client
			o.Scheme = strings.ToLower(strings.TrimSpace(v))
		}
		if v := get(h, "X-Forwarded-Host"); v != "" {
			o.Host = v
		}
		if v := first(h, "X-Forwarded-Uri", "X-Original-Uri"); v != "" {
			o.URI = v
		}
		if ip, ok := forwardedFor(h["X-Forwarded-For"]); ok {
			o.ClientIP = ip
		}
	}
	if !knownMethods[o.Method] {
		return original{}, badRequest("unknown method")
	}
	if o.Scheme != "http" && o.Scheme != "https" {
		return original{}, badRequest("scheme must be http or https")
	}
	host, err := cleanHost(o.Host)
	if err != nil {
		return original{}, err
	}
	o.Host = host
	if o.Path, err = normalisePath(o.URI); err != nil {
		return original{}, err
	}
	return o, nil
}

// get is h.Get for a name already in canonical form: this runs on every
// request a proxy forwards, and canonicalising costs more than the lookup.
func get(h http.Header, canonical string) string {
	if v := h[canonical]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func first(h http.Header, canonical ...string) string {
	for _, n := range canonical {
		if v := get(h, n); v != "" {
			return v
		}
	}
	return ""
}

// forwardedFor returns the client address a chain of proxies recorded: the
// first entry, as written by the proxy that met the client. Only called for a
// trusted peer; the address is for the record, never for a decision.
func forwardedFor(values []string) (netip.Addr, bool) {
	if len(values) == 0 {
		return netip.Addr{}, false
	}
	v, _, _ := strings.Cut(values[0], ",")
	ip, err := netip.ParseAddr(strings.TrimSpace(v))
	return ip.Unmap(), err == nil
}

var errBadHost = badRequest("malformed host")

// cleanHost checks a Host value: a DNS name or an IP literal, with an
// optional port, and returns it in lower case.
func cleanHost(h string) (string, error) {
	if h == "" || len(h) > 261 {
		return "", errBadHost
	}
	name := h
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		port := h[i+1:]
		name = h[:i]
		if port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			return "", errBadHost
		}
	}
	if strings.HasPrefix(name, "[") {
		ip, err := netip.ParseAddr(strings.Trim(name, "[]"))
		if err != nil || !ip.Is6() || !strings.HasSuffix(name, "]") {
			return "", errBadHost
		}
		return strings.ToLower(h), nil
	}
	for i := range len(name) {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return "", errBadHost
		}
	}
	if name == "" {
		return "", errBadHost
	}
	return strings.ToLower(h), nil
}

// normalisePath validates a request URI (origin form: a path and an optional
// query) and returns its path as the rules see it. Where apps could read a
// segment two ways (an encoded slash or dot-segment, a backslash, "..;"), it
// refuses instead of guessing: see the package doc.
func normalisePath(uri string) (string, error) {
	if len(uri) > MaxURILen {
		return "", badRequest("URI longer than %d bytes", MaxURILen)
	}
	if !strings.HasPrefix(uri, "/") {
		return "", badRequest("URI must start with /")
	}
	for i := range len(uri) {
		if c := uri[i]; c <= ' ' || c >= 0x7f || c == '#' || c == '\\' {
			return "", badRequest("URI holds a space, a control character, '#', '\\' or a byte outside ASCII")
		}
	}
	rawPath, _, _ := strings.Cut(uri, "?")
	if plainPath(rawPath) {
		return rawPath, nil // already what resolvePath would make of it
	}
	return resolvePath(rawPath)
}

// resolvePath decodes and resolves a raw path that starts with "/".
func resolvePath(rawPath string) (string, error) {
	var out []string
	trailing := false
	for raw := range strings.SplitSeq(rawPath[1:], "/") {
		seg, err := url.PathUnescape(raw)
		if err != nil {
			return "", badRequest("bad percent-encoding in the path")
		}
		for i := range len(seg) {
			switch c := seg[i]; {
			case c < ' ' || c == 0x7f:
				return "", badRequest("the path encodes a control character")
			case c == '/' || c == '\\':
				return "", badRequest("the path encodes a slash or backslash")
			case c == '%' && i+2 < len(seg) && isHex(seg[i+1]) && isHex(seg[i+2]):
				return "", badRequest("the path is encoded twice")
			}
		}
		// Path parameters: Tomcat and others ignore them in matching.
		base, _, _ := strings.Cut(seg, ";")
		if (base == "." || base == "..") && raw != base {
			return "", badRequest("an encoded or parameterised dot-segment")
		}
		trailing = base == "" || base == "." || base == ".."
		switch base {
		case "", ".":
		case "..":
			if len(out) == 0 {
				return "", badRequest("the path climbs above the root")
			}
			out = out[:len(out)-1]
		default:
			out = append(out, base)
		}
	}
	clean := "/" + strings.Join(out, "/")
	if trailing && len(out) > 0 {
		clean += "/"
	}
	return clean, nil
}

// plainPath reports whether p (which starts with "/") has nothing to decode
// or resolve: no '%' or ';', no empty, "." or ".." segment.
func plainPath(p string) bool {
	if strings.ContainsAny(p, "%;") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		rest := p[i+1:]
		seg, _, _ := strings.Cut(rest, "/")
		if (seg == "" && rest != "") || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
