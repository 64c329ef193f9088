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
}

func NewFront(config *Config, journal interface{ Append([]byte) error }) *Front {
	ids := newRandomIDs()
	f := &Front{key: config.Key, ttl: config.TTL, prefix: config.Prefix, journal: journal,
		now: time.Now, newID: ids.next}
	f.buffers.New = func() interface{} { b := make([]byte, 0, 1024); return &b }
	return f
}

func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if f.prefix != "" && strings.HasPrefix(path, f.prefix+"/") {
		path = path[len(f.prefix):]
	}
	switch {
	case strings.HasPrefix(path, "/c/"):
		f.click(w, r, path[3:])
	case strings.HasPrefix(path, "/o/"):
		f.open(w, r, strings.TrimSuffix(path[3:], ".gif"))
	case path == "/metrics":
		f.metrics(w)
	default:
		f.notFound(w, r)
	}
}

func (f *Front) verified(token, kind string, now time.Time) (Link, bool) {
	if len(token) < minToken || len(token) > maxToken {
		return Link{}, false
	}
	link, ok := verify(token, f.key, f.ttl, unixSeconds(now))
	return link, ok && link.Kind == kind
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// refuse: 405 for a method other than GET or HEAD, 404 for a token that did not verify.
func (f *Front) refuse(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != "GET" && r.Method != "HEAD" {
		atomic.AddUint64(&f.refused, 1)
		h := w.Header()
		h["Allow"] = []string{"GET, HEAD"}
		h["Content-Length"] = []string{"0"}
		h["Cache-Control"] = []string{noStore}
		w.WriteHeader(http.StatusMethodNotAllowed)
		return true
	}
	return false
}

func (f *Front) notFound(w http.ResponseWriter, r *http.Request) {
	atomic.AddUint64(&f.refused, 1)
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["Content-Length"] = []string{strconv.Itoa(len(notFoundBody))}
	h["Cache-Control"] = []string{noStore}
	w.WriteHeader(http.StatusNotFound)
	if r.Method == "GET" {
		w.Write([]byte(notFoundBody))
	}
}

func (f *Front) click(w http.ResponseWriter, r *http.Request, token string) {
	if f.refuse(w, r) {
		return
	}
	now := f.now()
	link, ok := f.verified(token, "click", now)
	location := ""
	if ok {
		location = safeLocation(link.URL)
	}
	if location == "" {
		f.notFound(w, r)
		return
	}
	if !f.record(w, r, &link, "click", now) {
		return
	}
	h := w.Header()
	h["Location"] = []string{location}
	h["Content-Length"] = []string{"0"}
	h["Cache-Control"] = []string{"no-store, private"}
	h["Referrer-Policy"] = []string{"no-referrer"}
	w.WriteHeader(http.StatusFound)
}

func (f *Front) open(w http.ResponseWriter, r *http.Request, token string) {
	if f.refuse(w, r) {
		return
	}
	now := f.now()
	link, ok := f.verified(token, "open", now)
	if !ok {
		f.notFound(w, r)
		return
	}
	if !f.record(w, r, &link, "open", now) {
		return
	}
	h := w.Header()
	h["Content-Type"] = []string{"image/gif"}
	h["Content-Length"] = []string{strconv.Itoa(len(gif))}
	h["Cache-Control"] = []string{noStore}
	h["Pragma"] = []string{"no-cache"}
	h["Expires"] = []string{"0"}
	w.WriteHeader(http.StatusOK)
	if r.Method == "GET" {
		w.Write(gif)
	}
}

// record writes the event to the journal; false (and a 503 already answered) if it could
// not be written: no answer goes out for an event that is nowhere.
func (f *Front) record(w http.ResponseWriter, r *http.Request, link *Link, kind string, now time.Time) bool {
	ip := clientIP(r)
	userAgent := latin1(r.Header.Get("User-Agent"))
	seconds := unixSeconds(now)
	reason := classify(kind, r.Method, userAgent, ip, link.Issued, seconds)
	id := f.newID()
	bufp := f.buffers.Get().(*[]byte)
	body := eventBody((*bufp)[:0], id, link, kind, ip, userAgent, reason, int64(seconds*1000))
	line := encodeLine(make([]byte, 0, len(body)+64), routingKeys[kind], body, id)
	*bufp = body
	f.buffers.Put(bufp)
	if err := f.journal.Append(line); err != nil {
		atomic.AddUint64(&f.failed, 1)
		log.Printf("trkfront: %s event not recorded: %v", kind, err)
		h := w.Header()
		h["Content-Length"] = []string{"0"}
		h["Cache-Control"] = []string{noStore}
		h["Retry-After"] = []string{"1"}
		w.WriteHeader(http.StatusServiceUnavailable)
		return false
	}
	atomic.AddUint64(&f.accepted, 1)
	return true
}

// clientIP: pages.client_ip, the peer's address, or what nginx on the same host (a
// loopback peer) says in X-Real-IP or as the last X-Forwarded-For entry.
func clientIP(r *http.Request) string {
	remote, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		remote = r.RemoteAddr
	}
	if strings.HasPrefix(remote, "127.") || strings.HasPrefix(remote, "::1") {
		if real := latin1(r.Header.Get("X-Real-Ip")); real != "" {
			return cut(pyStrip(real), 64)
		}
		if forwarded := latin1(r.Header.Get("X-Forwarded-For")); forwarded != "" {
			if at := strings.LastIndexByte(forwarded, ','); at >= 0 {
				forwarded = forwarded[at+1:]
			}
			return cut(pyStrip(forwarded), 64)
		}
	}
	return remote
}

func (f *Front) metrics(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	w.Write([]byte("# TYPE altcraft_trkfront_events_total counter\n" +
		"altcraft_trkfront_events_total{outcome=\"accepted\"} " + strconv.FormatUint(atomic.LoadUint64(&f.accepted), 10) + "\n" +
		"altcraft_trkfront_events_total{outcome=\"failed\"} " + strconv.FormatUint(atomic.LoadUint64(&f.failed), 10) + "\n" +
		"# TYPE altcraft_trkfront_refused_total counter\n" +
		"altcraft_trkfront_refused_total " + strconv.FormatUint(atomic.LoadUint64(&f.refused), 10) + "\n"))
}
