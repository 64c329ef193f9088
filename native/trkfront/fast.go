package main

// The fast path. net/http spends most of a click's CPU on its own per-request work (request
// and header maps, the response's bookkeeping): on the 2-core bench machine it answers a
// bare 302 at about 92,000 requests/s where a plain loop over the connection does 160,000.
// So the front reads the one shape of request the hot paths get (GET or HEAD, HTTP/1.1,
// no body, plain CRLF header lines, a path of token characters: what nginx sends) itself,
// and answers it with the bytes net/http would write. Anything else, at any point, hands the
// connection, with the bytes already read, to net/http for the rest of its life: edge cases
// (other methods, bodies, odd framing, HTTP/1.0, huge requests, /metrics) keep net/http's
// semantics, and this file only has to recognise the plain case, never to judge the rest.

import (
	"bytes"
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	fastBuffer = 8 << 10 // a request head longer than this goes to net/http (MaxHeaderBytes is its limit)
)

// serving: the fast path on the listener, net/http behind it for the connections it hands off.
type serving struct {
	fast   *fastServer
	http   *http.Server
	failed chan error // either server stopped on its own
}

func serveFront(listener net.Listener, front *Front, idle, header time.Duration) *serving {
	handoff := newHandoffListener(listener.Addr())
	s := &serving{
		fast: newFastServer(front, handoff, idle, header),
		http: &http.Server{
			Handler:           front,
			ReadHeaderTimeout: header,
			IdleTimeout:       idle,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          log.New(os.Stderr, "trkfront: ", log.LstdFlags|log.LUTC),
		},
		failed: make(chan error, 2),
	}
	go func() {
		if err := s.fast.Serve(listener); err != nil {
			s.failed <- err
		}
	}()
	go func() {
		if err := s.http.Serve(handoff); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.failed <- err
		}
	}()
	return s
}

// Shutdown: no new connection; each one ends once the answer in progress (its event written
// first) is out.
func (s *serving) Shutdown(ctx context.Context) error {
	err := s.fast.Shutdown(ctx)
	if herr := s.http.Shutdown(ctx); err == nil {
		err = herr
	}
	return err
}

// fastServer accepts the connections and serves them until one sends what it does not read.
type fastServer struct {
	front         *Front
	handoff       *handoffListener
	idleTimeout   time.Duration // waiting for the next request on a kept-alive connection
	headerTimeout time.Duration // reading a request's head once it began

	listener net.Listener
	closing  int32
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	active   sync.WaitGroup
	buffers  sync.Pool
}

func newFastServer(front *Front, handoff *handoffListener, idle, header time.Duration) *fastServer {
	s := &fastServer{front: front, handoff: handoff, idleTimeout: idle, headerTimeout: header,
		conns: map[net.Conn]struct{}{}}
	s.buffers.New = func() interface{} { b := make([]byte, fastBuffer); return &b }
	return s
}

// Serve accepts until the listener is closed (nil after Shutdown) or fails.
func (s *fastServer) Serve(listener net.Listener) error {
	s.listener = listener
	var pause time.Duration
	for {
		conn, err := listener.Accept()
		if err != nil {
			if atomic.LoadInt32(&s.closing) != 0 {
				return nil
			}
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() || isTemporary(err) {
				// out of file descriptors and the like: as net/http does, wait and go on
				if pause == 0 {
					pause = 5 * time.Millisecond
				} else if pause *= 2; pause > time.Second {
					pause = time.Second
				}
				log.Printf("trkfront: accept: %v; again in %v", err, pause)
				time.Sleep(pause)
				continue
			}
			return err
		}
		pause = 0
		if !s.track(conn) {
			conn.Close()
			continue
		}
		go s.serve(conn)
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

func (s *fastServer) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if atomic.LoadInt32(&s.closing) != 0 {
		return false
	}
	s.conns[conn] = struct{}{}
	s.active.Add(1)
	return true
}

func (s *fastServer) untrack(conn net.Conn) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
	s.active.Done()
}

// Shutdown stops accepting and ends every connection once the request it is answering (if
// any) is answered: its event is written first. A request whose head was only partly read
// gets no answer and records nothing.
func (s *fastServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	atomic.StoreInt32(&s.closing, 1)
	if s.listener != nil {
		s.listener.Close()
	}
	for conn := range s.conns {
		conn.SetReadDeadline(time.Now()) // a connection waiting to read wakes and ends
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.active.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *fastServer) serve(conn net.Conn) {
	handedOff := false
	defer func() {
		if !handedOff {
			conn.Close()
		}
		s.untrack(conn)
	}()
	bufp := s.buffers.Get().(*[]byte)
	defer s.buffers.Put(bufp)
	buf := *bufp
	remote := peerHost(conn.RemoteAddr())
	out := make([]byte, 0, 512)
	start, end := 0, 0 // buf[start:end]: read, not yet answered
	scanned := 0       // buf[start:start+scanned] holds no head end and no bare LF
	for {
		head, bare := scanHead(buf[start:end], scanned)
		if bare {
			handedOff = s.handOff(conn, buf[start:end]) // LF alone ends lines for net/http, not here
			return
		}
		if head < 0 {
			scanned = end - start
			if start > 0 {
				end = copy(buf, buf[start:end])
				start = 0
			}
			if end == len(buf) {
				handedOff = s.handOff(conn, buf[:end])
				return
			}
			timeout := s.idleTimeout
			if end > 0 {
				timeout = s.headerTimeout
			}
			// the deadline first, then the closing flag: Shutdown sets the flag, then
			// every deadline to now, so either this sees the flag or its read wakes
			conn.SetReadDeadline(time.Now().Add(timeout))
			if atomic.LoadInt32(&s.closing) != 0 {
				return
			}
			n, err := conn.Read(buf[end:])
			end += n
			if err != nil && n == 0 {
				return // closed, reset or timed out: as net/http, no answer
			}
			continue
		}
		scanned = 0
		request := buf[start : start+head+len(headEnd)]
		q, closeAfter, plain := readHead(request)
		if plain {
			q.path = s.front.route(q.path)
			plain = strings.HasPrefix(q.path, "/c/") || strings.HasPrefix(q.path, "/o/") // not /metrics
		}
		if !plain {
			handedOff = s.handOff(conn, buf[start:end])
			return
		}
		q.remote = remote
		a := s.front.serve(&q)
		atomic.AddUint64(&s.front.fastAnswers, 1)
		out = appendAnswer(out[:0], a, q.method == "GET", closeAfter)
		if _, err := conn.Write(out); err != nil || closeAfter {
			return
		}
		start += len(request)
	}
}

var headEnd = []byte("\r\n\r\n")

// scanHead: where in b the first head ends (the index of its CRLF CRLF, -1 if not yet), and
// whether a LF not after a CR comes first. b[:from] was scanned before and held neither.
func scanHead(b []byte, from int) (int, bool) {
	if from > 3 {
		from -= 3 // a CRLF CRLF may straddle the bytes scanned and the new ones
	} else {
		from = 0
	}
	for i := from; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if i == 0 || b[i-1] != '\r' {
			return -1, true
		}
		if i >= 3 && b[i-2] == '\n' && b[i-3] == '\r' {
			return i - 3, false
		}
	}
	return -1, false
}

// handOff gives the connection to net/http, which reads `pending` first.
func (s *fastServer) handOff(conn net.Conn, pending []byte) bool {
	atomic.AddUint64(&s.front.handoffs, 1)
	conn.SetReadDeadline(time.Time{})
	return s.handoff.give(&replayConn{Conn: conn, pending: append([]byte(nil), pending...)})
}

// peerHost: the host part of the peer's address, as ServeHTTP takes it from RemoteAddr
// (an IPv6 zone included).
func peerHost(addr net.Addr) string {
	text := addr.String()
	host, _, err := net.SplitHostPort(text)
	if err != nil {
		return text
	}
	return host
}

// readHead reads a request head (through its blank line) if it is the plain case: GET or
// HEAD of a path of [A-Za-z0-9_.-/] over HTTP/1.1, one valid Host, no body, no header this
// front would have to act on besides Connection: close. plain is false for anything else.
func readHead(head []byte) (q hit, closeAfter, plain bool) {
	line, rest := cutLine(head)
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return q, false, false
	}
	switch string(line[:sp]) {
	case "GET":
		q.method = "GET"
	case "HEAD":
		q.method = "HEAD"
	default:
		return q, false, false
	}
	target := line[sp+1:]
	sp = bytes.IndexByte(target, ' ')
	if sp < 1 || string(target[sp+1:]) != "HTTP/1.1" || target[0] != '/' {
		return q, false, false
	}
	target = target[:sp]
	for _, c := range target {
		if !pathChar(c) {
			return q, false, false
		}
	}
	q.path = string(target)
	hosts := 0
	var seen struct{ userAgent, realIP, forwardedFor bool } // the first of each counts, empty or not, as Header.Get
	for {
		line, rest = cutLine(rest)
		if len(line) == 0 {
			break // the blank line: head ends with it
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 1 {
			return q, false, false // no name, or a folded continuation line
		}
		name := line[:colon]
		for _, c := range name {
			if !tokenByte(c) {
				return q, false, false
			}
		}
		value := bytes.Trim(line[colon+1:], " \t")
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return q, false, false
			}
		}
		switch {
		case asciiFold(name, "host"):
			hosts++
			if len(value) == 0 {
				return q, false, false
			}
			for _, c := range value {
				if !hostChar(c) {
					return q, false, false
				}
			}
		case asciiFold(name, "user-agent"):
			if !seen.userAgent {
				q.userAgent, seen.userAgent = string(value), true
			}
		case asciiFold(name, "x-real-ip"):
			if !seen.realIP {
				q.realIP, seen.realIP = string(value), true
			}
		case asciiFold(name, "x-forwarded-for"):
			if !seen.forwardedFor {
				q.forwardedFor, seen.forwardedFor = string(value), true
			}
		case asciiFold(name, "connection"):
			for _, option := range bytes.Split(value, []byte(",")) {
				option = bytes.Trim(option, " \t")
				switch {
				case asciiFold(option, "close"):
					closeAfter = true
				case asciiFold(option, "keep-alive"):
				default:
					return q, false, false // upgrade and the like
				}
			}
		case asciiFold(name, "content-length"), asciiFold(name, "transfer-encoding"), asciiFold(name, "expect"),
			asciiFold(name, "upgrade"), asciiFold(name, "te"), asciiFold(name, "trailer"):
			return q, false, false
		}
	}
	return q, closeAfter, hosts == 1
}

// cutLine: the bytes before the first CRLF, and those after it.
func cutLine(b []byte) ([]byte, []byte) {
	at := bytes.Index(b, crlf)
	if at < 0 {
		return b, nil
	}
	return b[:at], b[at+2:]
}

var crlf = []byte("\r\n")

func pathChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '/'
}

func hostChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':' ||
		c == '[' || c == ']' || c == '_'
}

// tokenByte: RFC 9110's tchar, what a header name may hold.
func tokenByte(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

// asciiFold: b equals lower (given in lower case) ignoring ASCII case.
func asciiFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// appendAnswer: the bytes net/http writes for the answer: the status line, the handler's
// headers sorted, then Date (and Connection: close when the connection ends), the body for
// a GET.
func appendAnswer(out []byte, a answer, get, closeAfter bool) []byte {
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(a.status), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(a.status)...)
	out = append(out, "\r\n"...)
	for _, field := range answerHeaders(a) {
		out = append(out, field[0]...)
		out = append(out, ": "...)
		out = append(out, field[1]...)
		out = append(out, "\r\n"...)
	}
	out = append(out, "Date: "...)
	out = appendDate(out)
	out = append(out, "\r\n"...)
	if closeAfter {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)
	if get {
		out = append(out, answerBody(a)...)
	}
	return out
}

// appendDate: the Date header's value, formatted once a second.
func appendDate(out []byte) []byte {
	now := time.Now().Unix()
	cached := dateCache.Load().(*dateText)
	if cached.second != now {
		cached = &dateText{now, time.Unix(now, 0).UTC().AppendFormat(nil, http.TimeFormat)}
		dateCache.Store(cached)
	}
	return append(out, cached.text...)
}

type dateText struct {
	second int64
	text   []byte
}

var dateCache atomic.Value

func init() { dateCache.Store(&dateText{}) }

// handoffListener: what net/http's Server accepts, the connections the fast path gave up.
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (h *handoffListener) Accept() (net.Conn, error) {
	select {
	case conn := <-h.conns:
		return conn, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoffListener) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoffListener) Addr() net.Addr { return h.addr }

// give: false (and the connection left to the caller) when net/http has stopped.
func (h *handoffListener) give(conn net.Conn) bool {
	select {
	case h.conns <- conn:
		return true
	case <-h.done:
		return false
	}
}

// replayConn: a connection whose first reads return what the fast path had already read.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite: net/http half-closes a connection it refuses a request on, when it can.
func (c *replayConn) CloseWrite() error {
	if half, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return half.CloseWrite()
	}
	return nil
}
