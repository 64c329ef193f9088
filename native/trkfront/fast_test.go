package main

// The fast path against net/http: every request, plain or not, gets from the product's
// serving (fast path, net/http behind it) the bytes net/http alone gives, and the same
// journal line; the plain ones never reach net/http, the others always do.

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type servedFront struct {
	addr    string
	front   *Front
	journal *memoryJournal
}

func testFront(t *testing.T) *Front {
	var vectors struct {
		Key string
		Now float64
	}
	load(t, "requests.json", &vectors)
	front := NewFront(&Config{Key: []byte(vectors.Key), TTL: 400 * 86400, Prefix: "/t"}, &memoryJournal{})
	front.now = func() time.Time { return time.Unix(0, int64(vectors.Now*1e9)) }
	front.newID = func() string { return "00000000-0000-4000-8000-000000000000" }
	return front
}

func listen(t *testing.T) net.Listener {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return listener
}

// product: the front as main.go serves it.
func product(t *testing.T, idle, header time.Duration) (servedFront, *serving) {
	front := testFront(t)
	listener := listen(t)
	s := serveFront(listener, front, idle, header)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return servedFront{listener.Addr().String(), front, front.journal.(*memoryJournal)}, s
}

// netHTTP: the same front behind net/http alone.
func netHTTP(t *testing.T) servedFront {
	front := testFront(t)
	listener := listen(t)
	server := &http.Server{Handler: front, ReadHeaderTimeout: headerTimeout, MaxHeaderBytes: 64 << 10}
	go server.Serve(listener)
	t.Cleanup(func() { server.Close() })
	return servedFront{listener.Addr().String(), front, front.journal.(*memoryJournal)}
}

// exchange sends raw in the given pieces, half-closes, and returns all the server wrote.
func exchange(t *testing.T, addr string, pieces ...string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, piece := range pieces {
		if _, err := conn.Write([]byte(piece)); err != nil {
			t.Fatal(err)
		}
		if len(pieces) > 1 {
			time.Sleep(20 * time.Millisecond) // arrives as reads of its own
		}
	}
	conn.(*net.TCPConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return dates.ReplaceAllString(string(answer), "Date: <date>\r\n")
}

var dates = regexp.MustCompile(`Date: [^\r]*\r\n`)

func TestFastPathAnswersAsNetHTTP(t *testing.T) {
	var vectors struct {
		Cases []struct{ Name, Path string }
	}
	load(t, "requests.json", &vectors)
	click, open := "", ""
	for _, c := range vectors.Cases {
		if click == "" && strings.Contains(c.Path, "/c/") {
			click = c.Path
		}
		if open == "" && strings.Contains(c.Path, "/o/") {
			open = c.Path
		}
	}
	if click == "" || open == "" {
		t.Fatal("the shared vectors have no click or no open path")
	}
	get := func(path string, headers ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: trk.example.com\r\n" + strings.Join(headers, "") + "\r\n"
	}
	ua := "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36\r\n"
	cases := []struct {
		name   string
		fast   bool // answered without net/http
		pieces []string
	}{
		{"click", true, []string{get(click, ua)}},
		{"click HEAD", true, []string{"HEAD" + get(click, ua)[3:]}},
		{"open", true, []string{get(open, ua)}},
		{"open HEAD", true, []string{"HEAD" + get(open, ua)[3:]}},
		{"tampered token", true, []string{get(click[:len(click)-3]+"AAA", ua)}},
		{"short token", true, []string{get("/t/c/abc", ua)}},
		{"a bot", true, []string{get(click, "User-Agent: curl/8.0\r\n")}},
		{"no user agent", true, []string{get(click)}},
		{"nginx's headers", true, []string{get(click, ua, "X-Real-IP: 203.0.113.9\r\n",
			"X-Forwarded-For: 10.0.0.1, 203.0.113.9\r\n", "X-Forwarded-Proto: https\r\n")}},
		{"forwarded only", true, []string{get(click, ua, "x-forwarded-for:10.0.0.1,  198.51.100.7 \r\n")}},
		{"names in any case", true, []string{get(click, "user-AGENT: Mozilla/5.0 Firefox/120.0\r\n", "X-REAL-IP: 192.0.2.1\r\n")}},
		{"two user agents", true, []string{get(click, "User-Agent: first Chrome/1\r\n", "User-Agent: curl/1\r\n")}},
		{"an empty user agent first", true, []string{get(click, "User-Agent: \r\n", "User-Agent: curl/8.0\r\n")}},
		{"an empty X-Real-IP first", true, []string{get(click, ua, "X-Real-IP:\r\n", "X-Real-IP: 192.0.2.1\r\n",
			"X-Forwarded-For: 198.51.100.7\r\n")}},
		{"latin-1 user agent", true, []string{get(click, "User-Agent: Mozilla/5.0 \xe9t\xe9 Chrome/120\r\n")}},
		{"Connection: close", true, []string{get(click, ua, "Connection: close\r\n")}},
		{"Connection: keep-alive", true, []string{get(click, ua, "Connection: Keep-Alive\r\n")}},
		{"two in one write", true, []string{get(click, ua) + get(open, ua)}},
		{"in pieces", true, []string{"GET " + click, " HTTP/1.1\r\nHo", "st: a\r\n" + ua + "\r", "\n"}},
		{"not a route of ours", false, []string{get("/t/u/abc", ua)}},
		{"metrics", false, []string{get("/metrics")}},
		{"POST", false, []string{"POST " + click + " HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"}},
		{"a body", false, []string{get(click, ua, "Content-Length: 3\r\n") + "abc"}},
		{"chunked", false, []string{get(click, ua, "Transfer-Encoding: chunked\r\n") + "0\r\n\r\n"}},
		{"HTTP/1.0", false, []string{"GET " + click + " HTTP/1.0\r\n" + ua + "\r\n"}},
		{"HTTP/1.0 with a Host", false, []string{"GET " + click + " HTTP/1.0\r\nHost: a\r\n" + ua + "\r\n"}},
		{"no Host", false, []string{"GET " + click + " HTTP/1.1\r\n" + ua + "\r\n"}},
		{"two Hosts", false, []string{get(click, ua, "Host: b\r\n")}},
		{"a folded line", false, []string{get(click, ua, "X-Note: a\r\n b\r\n")}},
		{"LF alone", false, []string{"GET " + click + " HTTP/1.1\nHost: a\n" + ua[:len(ua)-2] + "\n\n"}},
		{"a control byte", false, []string{get(click, "User-Agent: a\x01b Chrome/1\r\n")}},
		{"space before the colon", false, []string{get(click, "User-Agent : Chrome/1\r\n")}},
		{"percent-encoded", false, []string{get(strings.Replace(click, "/c/", "/%63/", 1), ua)}},
		{"a query", false, []string{get(click+"?utm=1", ua)}},
		{"Upgrade", false, []string{get(click, ua, "Connection: Upgrade\r\n", "Upgrade: websocket\r\n")}},
		{"Expect", false, []string{get(click, ua, "Expect: 100-continue\r\n")}},
		{"a head longer than the buffer", false, []string{get(click, "User-Agent: Chrome/1 "+strings.Repeat("x", fastBuffer)+"\r\n")}},
		{"plain, then a POST", false, []string{get(click, ua) + "POST " + click + " HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"}},
		{"an empty line first", false, []string{"\r\n" + get(click, ua)}},
	}
	fastAnswers := map[string]uint64{"two in one write": 2, "plain, then a POST": 1} // the rest: 1 if fast, else 0
	ours, _ := product(t, idleTimeout, headerTimeout)
	reference := netHTTP(t)
	for _, c := range cases {
		ours.journal.lines, reference.journal.lines = nil, nil
		before := atomic.LoadUint64(&ours.front.handoffs)
		fastBefore := atomic.LoadUint64(&ours.front.fastAnswers)
		got, want := exchange(t, ours.addr, c.pieces...), exchange(t, reference.addr, c.pieces...)
		if c.name == "metrics" { // the counters differ by design: the handoff is counted
			got, want = got[:strings.Index(got, "\r\n")], want[:strings.Index(want, "\r\n")]
		}
		if got != want {
			t.Errorf("%s:\n ours     %q\n net/http %q", c.name, got, want)
		}
		if want == "" || !strings.HasPrefix(want, "HTTP/1.") {
			t.Errorf("%s: net/http answered %q: not a case that tells anything", c.name, want)
		}
		if strings.Join(ours.journal.lines, "") != strings.Join(reference.journal.lines, "") {
			t.Errorf("%s: journal\n ours     %q\n net/http %q", c.name, ours.journal.lines, reference.journal.lines)
		}
		handedOff := atomic.LoadUint64(&ours.front.handoffs) - before
		wantFast := map[bool]uint64{true: 1, false: 0}[c.fast]
		if n, ok := fastAnswers[c.name]; ok {
			wantFast = n
		}
		if fast := atomic.LoadUint64(&ours.front.fastAnswers) - fastBefore; fast != wantFast {
			t.Errorf("%s: %d answers counted as the fast path's, want %d", c.name, fast, wantFast)
		}
		if c.fast && handedOff != 0 {
			t.Errorf("%s: handed to net/http, the fast path should answer it", c.name)
		} else if !c.fast && handedOff != 1 {
			t.Errorf("%s: answered by the fast path (%d handoffs), only net/http should", c.name, handedOff)
		}
	}
}

func TestFastPathTimeouts(t *testing.T) {
	ours, _ := product(t, 300*time.Millisecond, 300*time.Millisecond)
	for name, sent := range map[string]string{"idle": "", "a head begun": "GET /t/c/abc HTTP/1.1\r\nHost: a\r\n"} {
		conn, err := net.Dial("tcp", ours.addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte(sent))
		began := time.Now()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		answer, err := io.ReadAll(conn)
		waited := time.Since(began)
		conn.Close()
		if err != nil || len(answer) != 0 || waited < 250*time.Millisecond || waited > 3*time.Second {
			t.Errorf("%s: closed after %v with %q (%v); want closed, unanswered, after about 300 ms", name, waited, answer, err)
		}
	}
}

func TestFastPathShutdownEndsIdleConnections(t *testing.T) {
	ours, s := product(t, time.Minute, time.Minute)
	conn, err := net.Dial("tcp", ours.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("GET /t/c/abc HTTP/1.1\r\nHost: a\r\n\r\n"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	first := make([]byte, 4096)
	if n, err := conn.Read(first); err != nil || !bytes.HasPrefix(first[:n], []byte("HTTP/1.1 404 ")) {
		t.Fatalf("the first answer: %q %v", first[:n], err)
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if waited := time.Since(began); waited > time.Second {
		t.Errorf("shutdown waited %v for an idle kept-alive connection", waited)
	}
	if n, err := conn.Read(first); err != io.EOF {
		t.Errorf("after shutdown the connection read %q, %v; want it closed", first[:n], err)
	}
	if _, err := net.DialTimeout("tcp", ours.addr, time.Second); err == nil {
		t.Error("still accepting after shutdown")
	}
}
