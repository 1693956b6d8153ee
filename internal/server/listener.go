package server

import (
	"container/list"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// limitListener caps open connections. Unlike netutil.LimitListener it never
// blocks Accept: at the cap it closes an idle connection to make room, or the
// new one when every connection is busy, so the kernel backlog never fills
// with clients who wait for a slot that idle holders keep. Connections that
// have not yet completed a request go first, oldest first: a crowd of silent
// connections is cut before the keep-alive connections of clients that use
// them.
type limitListener struct {
	net.Listener
	max int

	mu    sync.Mutex
	n     int       // open connections
	fresh list.List // *conn that have not completed a request yet, oldest first
	idle  list.List // *conn idle between requests, longest-idle first

	evicted, refused atomic.Uint64
}

// conn is an accepted connection that the listener counts until it closes.
type conn struct {
	net.Conn
	l *limitListener

	// Guarded by l.mu.
	elem      *list.Element // in l.fresh or l.idle while evictable
	in        *list.List    // which of the two
	idleSince time.Time
	closed    bool
}

// park makes c evictable on list in, as of now.
func (c *conn) park(in *list.List, now time.Time) {
	c.unpark()
	c.idleSince, c.in, c.elem = now, in, in.PushBack(c)
}

func (c *conn) unpark() {
	if c.elem != nil {
		c.in.Remove(c.elem)
		c.in, c.elem = nil, nil
	}
}

// oldestLocked is the connection to evict first, or nil.
func (l *limitListener) oldestLocked() *conn {
	for _, in := range []*list.List{&l.fresh, &l.idle} {
		if front := in.Front(); front != nil {
			return front.Value.(*conn)
		}
	}
	return nil
}

func newLimitListener(ln net.Listener, max int) *limitListener {
	return &limitListener{Listener: ln, max: max}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		var victim *conn
		if l.n >= l.max {
			if victim = l.oldestLocked(); victim == nil {
				l.mu.Unlock()
				l.refused.Add(1)
				nc.Close()
				continue
			}
			l.dropLocked(victim)
		}
		c := &conn{Conn: nc, l: l}
		c.park(&l.fresh, time.Now())
		l.n++
		l.mu.Unlock()
		if victim != nil {
			l.evicted.Add(1)
			victim.Conn.Close()
		}
		return c, nil
	}
}

// dropLocked stops counting c; whoever called it closes c.Conn.
func (l *limitListener) dropLocked(c *conn) {
	if c.closed {
		return
	}
	c.closed = true
	l.n--
	c.unpark()
}

func (c *conn) Close() error {
	c.l.mu.Lock()
	c.l.dropLocked(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// connState follows http.Server's view of each connection: a connection is
// evictable while idle, never while a request is being handled.
func (l *limitListener) connState(nc net.Conn, st http.ConnState) {
	c, ok := netConn(nc).(*conn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.closed {
		return
	}
	switch st {
	case http.StateActive, http.StateHijacked: // a hijacker owns it and closes it
		c.unpark()
	case http.StateIdle:
		c.park(&l.idle, time.Now())
	case http.StateClosed:
		l.dropLocked(c)
	}
}

// reapIdle closes connections idle since before cutoff, but only while more
// than three quarters of the cap are open: keep-alive is shortened under
// pressure and left alone otherwise.
func (l *limitListener) reapIdle(cutoff time.Time) int {
	var victims []*conn
	l.mu.Lock()
	for _, in := range []*list.List{&l.fresh, &l.idle} {
		for l.n > l.max*3/4 {
			front := in.Front()
			if front == nil || !front.Value.(*conn).idleSince.Before(cutoff) {
				break
			}
			c := front.Value.(*conn)
			l.dropLocked(c)
			victims = append(victims, c)
		}
	}
	l.mu.Unlock()
	for _, c := range victims {
		c.Conn.Close()
	}
	l.evicted.Add(uint64(len(victims)))
	return len(victims)
}

func (l *limitListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
