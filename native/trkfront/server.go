package main

// The answers of /c/<token> and /o/<token>.gif, as altcraft/services/trk/app.py gives them:
// the token verified before anything is recorded, the event in the journal before the
// answer, the redirect only to the http(s) URL signed into the token. Anything else this
// front does not serve: nginx sends it to the Python process.

import (
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var gif = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00," +
	"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x01D\x00;")

const (
	noStore      = "no-store, no-cache, must-revalidate, max-age=0, private"
	notFoundBody = "not found\n"
	minToken     = 40 // app._TOKEN: [A-Za-z0-9_-]{40,8192}
	maxToken     = 8192
)

type Front struct {
	key     []byte
	ttl     int64
	prefix  string
	journal interface{ Append([]byte) error }
	now     func() time.Time
	newID   func() string
	buffers sync.Pool

	accepted, refused, failed uint64 // events written; requests refused (404/405); writes that failed
	handoffs                  uint64 // connections the fast path (fast.go) gave to net/http
	fastAnswers, httpAnswers  uint64 // answers to /c and /o by the fast path, by net/http
}

func NewFront(config *Config, journal interface{ Append([]byte) error }) *Front {
	ids := newRandomIDs()
	f := &Front{key: config.Key, ttl: config.TTL, prefix: config.Prefix, journal: journal,
		now: time.Now, newID: ids.next}
	f.buffers.New = func() interface{} { b := make([]byte, 0, 1024); return &b }
	return f
}

// hit: what the answers of /c and /o read of a request, from either server.
type hit struct {
	method, path                    string
	userAgent, realIP, forwardedFor string // header values as received (bytes, not yet latin1)
	remote                          string // the peer's address, host only
}

// answer: the outcome of a hit; each server writes it its own way (answerHeaders).
type answer struct {
	status   int
	location string // StatusFound only
}

func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := f.route(r.URL.Path)
	if path == "/metrics" {
		f.metrics(w)
		return
	}
	remote, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		remote = r.RemoteAddr
	}
	a := f.serve(&hit{method: r.Method, path: path, userAgent: r.Header.Get("User-Agent"),
		realIP: r.Header.Get("X-Real-Ip"), forwardedFor: r.Header.Get("X-Forwarded-For"), remote: remote})
	atomic.AddUint64(&f.httpAnswers, 1)
	h := w.Header()
	for _, field := range answerHeaders(a) {
		h[field[0]] = []string{field[1]}
	}
	w.WriteHeader(a.status)
	if r.Method == "GET" {
		w.Write(answerBody(a))
	}
}

// route: the path without TRACKING_BASE_URL's path.
func (f *Front) route(path string) string {
	if f.prefix != "" && strings.HasPrefix(path, f.prefix+"/") {
		return path[len(f.prefix):]
	}
	return path
}

// serve answers a hit on /c/ or /o/ (404 for any other path), the event written first.
func (f *Front) serve(q *hit) answer {
	var a answer
	switch {
	case strings.HasPrefix(q.path, "/c/"):
		a = f.click(q, q.path[3:])
	case strings.HasPrefix(q.path, "/o/"):
		a = f.open(q, strings.TrimSuffix(q.path[3:], ".gif"))
	default:
		a = answer{status: http.StatusNotFound}
	}
	if a.status == http.StatusNotFound || a.status == http.StatusMethodNotAllowed {
		atomic.AddUint64(&f.refused, 1)
	}
	return a
}

func (f *Front) verified(token, kind string, now time.Time) (Link, bool) {
	if len(token) < minToken || len(token) > maxToken {
		return Link{}, false
	}
	link, ok := verify(token, f.key, f.ttl, unixSeconds(now))
	return link, ok && link.Kind == kind
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// the fixed headers of each answer, in the order net/http writes them (sorted); Location
// is the one that varies
var (
	notAllowedHeaders  = [][2]string{{"Allow", "GET, HEAD"}, {"Cache-Control", noStore}, {"Content-Length", "0"}}
	notFoundHeaders    = [][2]string{{"Cache-Control", noStore}, {"Content-Length", strconv.Itoa(len(notFoundBody))}, {"Content-Type", "text/plain; charset=utf-8"}}
	pixelHeaders       = [][2]string{{"Cache-Control", noStore}, {"Content-Length", strconv.Itoa(len(gif))}, {"Content-Type", "image/gif"}, {"Expires", "0"}, {"Pragma", "no-cache"}}
	unavailableHeaders = [][2]string{{"Cache-Control", noStore}, {"Content-Length", "0"}, {"Retry-After", "1"}}
)

func answerHeaders(a answer) [][2]string {
	switch a.status {
	case http.StatusFound:
		return [][2]string{{"Cache-Control", "no-store, private"}, {"Content-Length", "0"}, {"Location", a.location},
			{"Referrer-Policy", "no-referrer"}}
	case http.StatusOK:
		return pixelHeaders
	case http.StatusMethodNotAllowed:
		return notAllowedHeaders
	case http.StatusServiceUnavailable:
		return unavailableHeaders
	}
	return notFoundHeaders
}

// answerBody: what a GET gets after the headers (a HEAD gets none).
func answerBody(a answer) []byte {
	switch a.status {
	case http.StatusOK:
		return gif
	case http.StatusNotFound:
		return []byte(notFoundBody)
	}
	return nil
}

func (f *Front) click(q *hit, token string) answer {
	if q.method != "GET" && q.method != "HEAD" {
		return answer{status: http.StatusMethodNotAllowed}
	}
	now := f.now()
	link, ok := f.verified(token, "click", now)
	location := ""
	if ok {
		location = safeLocation(link.URL)
	}
	if location == "" {
		return answer{status: http.StatusNotFound}
	}
	if !f.record(q, &link, "click", now) {
		return answer{status: http.StatusServiceUnavailable}
	}
	return answer{status: http.StatusFound, location: location}
}

func (f *Front) open(q *hit, token string) answer {
	if q.method != "GET" && q.method != "HEAD" {
		return answer{status: http.StatusMethodNotAllowed}
	}
	now := f.now()
	link, ok := f.verified(token, "open", now)
	if !ok {
		return answer{status: http.StatusNotFound}
	}
	if !f.record(q, &link, "open", now) {
		return answer{status: http.StatusServiceUnavailable}
	}
	return answer{status: http.StatusOK}
}

// record writes the event to the journal; false if it could not be written: no answer but
// a 503 goes out for an event that is nowhere.
func (f *Front) record(q *hit, link *Link, kind string, now time.Time) bool {
	ip := clientIP(q)
	userAgent := latin1(q.userAgent)
	seconds := unixSeconds(now)
	reason := classify(kind, q.method, userAgent, ip, link.Issued, seconds)
	id := f.newID()
	bufp := f.buffers.Get().(*[]byte)
	body := eventBody((*bufp)[:0], id, link, kind, ip, userAgent, reason, int64(seconds*1000))
	line := encodeLine(make([]byte, 0, len(body)+64), routingKeys[kind], body, id)
	*bufp = body
	f.buffers.Put(bufp)
	if err := f.journal.Append(line); err != nil {
		atomic.AddUint64(&f.failed, 1)
		log.Printf("trkfront: %s event not recorded: %v", kind, err)
		return false
	}
	atomic.AddUint64(&f.accepted, 1)
	return true
}

// clientIP: pages.client_ip, the peer's address, or what nginx on the same host (a
// loopback peer) says in X-Real-IP or as the last X-Forwarded-For entry.
func clientIP(q *hit) string {
	if strings.HasPrefix(q.remote, "127.") || strings.HasPrefix(q.remote, "::1") {
		if real := latin1(q.realIP); real != "" {
			return cut(pyStrip(real), 64)
		}
		if forwarded := latin1(q.forwardedFor); forwarded != "" {
			if at := strings.LastIndexByte(forwarded, ','); at >= 0 {
				forwarded = forwarded[at+1:]
			}
			return cut(pyStrip(forwarded), 64)
		}
	}
	return q.remote
}

func (f *Front) metrics(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	w.Write([]byte("# TYPE altcraft_trkfront_events_total counter\n" +
		"altcraft_trkfront_events_total{outcome=\"accepted\"} " + strconv.FormatUint(atomic.LoadUint64(&f.accepted), 10) + "\n" +
		"altcraft_trkfront_events_total{outcome=\"failed\"} " + strconv.FormatUint(atomic.LoadUint64(&f.failed), 10) + "\n" +
		"# TYPE altcraft_trkfront_refused_total counter\n" +
		"altcraft_trkfront_refused_total " + strconv.FormatUint(atomic.LoadUint64(&f.refused), 10) + "\n" +
		"# HELP altcraft_trkfront_handoffs_total connections net/http served because they sent more than a plain GET or HEAD\n" +
		"# TYPE altcraft_trkfront_handoffs_total counter\n" +
		"altcraft_trkfront_handoffs_total " + strconv.FormatUint(atomic.LoadUint64(&f.handoffs), 10) + "\n" +
		"# HELP altcraft_trkfront_answers_total answers to /c and /o by the server that read the request\n" +
		"# TYPE altcraft_trkfront_answers_total counter\n" +
		"altcraft_trkfront_answers_total{server=\"fast\"} " + strconv.FormatUint(atomic.LoadUint64(&f.fastAnswers), 10) + "\n" +
		"altcraft_trkfront_answers_total{server=\"net/http\"} " + strconv.FormatUint(atomic.LoadUint64(&f.httpAnswers), 10) + "\n"))
}
