package main

import (
	"net/http"
	"strings"
	"sync"

	"github.com/tetherhq/tether/internal/api/apitest"
)

// answer is one response of a node's API, kept for checkOpenAPI.
type answer struct {
	listener string
	r        *http.Request
	status   int
	header   http.Header
	body     []byte
}

var answers struct {
	mu     sync.Mutex
	byNode map[*node][]answer
}

// recordAnswer keeps a response of n's API, to be checked against its
// listener's OpenAPI document when the test ends: the end-to-end tests keep
// the documents true too. Not at once, so that no check slows a test that
// counts requests against a rate limit.
func (n *node) recordAnswer(r *http.Request, status int, header http.Header, body []byte) {
	var listener string
	switch u := r.URL.String(); {
	case n.pub != "" && strings.HasPrefix(u, n.pub+"/"):
		listener = "public"
	case n.adm != "" && strings.HasPrefix(u, n.adm+"/"):
		listener = "admin"
	default:
		return
	}
	answers.mu.Lock()
	defer answers.mu.Unlock()
	if answers.byNode == nil {
		answers.byNode = make(map[*node][]answer)
	}
	if _, seen := answers.byNode[n]; !seen {
		n.t.Cleanup(func() { n.checkAnswers() })
	}
	answers.byNode[n] = append(answers.byNode[n], answer{listener, r, status, header, body})
}

func (n *node) checkAnswers() {
	answers.mu.Lock()
	list := answers.byNode[n]
	delete(answers.byNode, n)
	answers.mu.Unlock()
	for _, a := range list {
		apitest.CheckResponse(n.t, a.listener, a.r, a.status, a.header, a.body)
	}
}
