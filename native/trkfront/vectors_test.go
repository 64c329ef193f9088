package main

// The shared vectors (testdata/*.json, written from the Python implementation by
// tests/lib/trkfront_vectors.py): this front must give the answers the Python one gives.

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, name string, into interface{}) {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatalf("the shared vectors: %v (written by `python -m tests.lib.trkfront_vectors`)", err)
	}
	if err := json.Unmarshal(data, into); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func TestTokensAsPython(t *testing.T) {
	var vectors struct {
		Key   string
		TTL   int64
		Now   float64
		Cases []struct {
			Name  string
			Token string
			Link  *Link
		}
	}
	load(t, "tokens.json", &vectors)
	if len(vectors.Cases) < 20 {
		t.Fatalf("only %d token cases", len(vectors.Cases))
	}
	for _, c := range vectors.Cases {
		link, ok := verify(c.Token, []byte(vectors.Key), vectors.TTL, vectors.Now)
		if c.Link == nil {
			if ok {
				t.Errorf("%s: verified, Python refuses it", c.Name)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: refused, Python verifies it", c.Name)
		} else if link != *c.Link {
			t.Errorf("%s: %+v, Python reads %+v", c.Name, link, *c.Link)
		}
	}
}

func TestBotCheckAsPython(t *testing.T) {
	var vectors struct {
		Scanners          []scannerClass
		ClickAfterSigning float64 `json:"click_after_signing"`
		Cases             []struct {
			Kind, Method, IP string
			UserAgent        string `json:"user_agent"`
			Issued           uint32
			Now              float64
			Reason           string
		}
	}
	load(t, "bots.json", &vectors)
	if !reflect.DeepEqual(vectors.Scanners, scanners) {
		t.Fatalf("bot.go's user-agent table differs from botfilter._SCANNERS:\n go %v\n py %v", scanners, vectors.Scanners)
	}
	if vectors.ClickAfterSigning != clickAfterSigning {
		t.Fatalf("CLICK_AFTER_SIGNING is %v in Python, %v here", vectors.ClickAfterSigning, clickAfterSigning)
	}
	for _, c := range vectors.Cases {
		if got := classify(c.Kind, c.Method, c.UserAgent, c.IP, c.Issued, c.Now); got != c.Reason {
			t.Errorf("%s %s ua=%q ip=%q issued=%d now=%v: %q, Python says %q", c.Kind, c.Method, c.UserAgent, c.IP,
				c.Issued, c.Now, got, c.Reason)
		}
	}
}

func TestEventBodiesAsPython(t *testing.T) {
	var vectors struct {
		Cases []struct {
			Link       Link
			Kind, IP   string
			UserAgent  string `json:"user_agent"`
			BotReason  string `json:"bot_reason"`
			Millis     int64
			EventID    string `json:"event_id"`
			RoutingKey string `json:"routing_key"`
			Body       string
		}
	}
	load(t, "events.json", &vectors)
	for _, c := range vectors.Cases {
		body := string(eventBody(nil, c.EventID, &c.Link, c.Kind, c.IP, c.UserAgent, c.BotReason, c.Millis))
		if body != c.Body {
			t.Errorf("%s %q:\n go %s\n py %s", c.Kind, cut(c.UserAgent, 40), body, c.Body)
		}
		if routingKeys[c.Kind] != c.RoutingKey {
			t.Errorf("%s: routing key %q, Python %q", c.Kind, routingKeys[c.Kind], c.RoutingKey)
		}
	}
}

func TestJournalLinesAsPython(t *testing.T) {
	var vectors struct {
		SegmentBytes int64 `json:"segment_bytes"`
		Lines        []struct {
			RoutingKey     string `json:"routing_key"`
			ID, Body, Line string
		}
		Names []struct {
			Name         string
			Pid, Segment int
		}
	}
	load(t, "journal.json", &vectors)
	if vectors.SegmentBytes != segmentBytes {
		t.Errorf("SEGMENT_BYTES %d in Python, %d here", vectors.SegmentBytes, segmentBytes)
	}
	for _, l := range vectors.Lines {
		if got := string(encodeLine(nil, l.RoutingKey, []byte(l.Body), l.ID)); got != l.Line {
			t.Errorf("line:\n go %q\n py %q", got, l.Line)
		}
	}
	for _, n := range vectors.Names {
		if pid, segment := writerOf(n.Name); pid != n.Pid || segment != n.Segment {
			t.Errorf("writer_of(%q) = (%d, %d), Python (%d, %d)", n.Name, pid, segment, n.Pid, n.Segment)
		}
	}
}

type memoryJournal struct{ lines []string }

func (m *memoryJournal) Append(line []byte) error {
	m.lines = append(m.lines, string(line))
	return nil
}

// latin1Bytes: a header value the Python app saw as these code points (WSGI: one byte each).
func latin1Bytes(s string) string {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		out = append(out, byte(r))
	}
	return string(out)
}

func TestRequestsAsPython(t *testing.T) {
	var vectors struct {
		Key     string
		BaseURL string `json:"base_url"`
		Now     float64
		Cases   []struct {
			Name, Method, Path, Remote string
			Headers                    map[string]string
			Status                     int
			ResponseHeaders            [][2]string `json:"response_headers"`
			Body                       string
			Event                      *struct {
				RoutingKey string `json:"routing_key"`
				Body, ID   string
			} `json:"event"`
		}
	}
	load(t, "requests.json", &vectors)
	journal := &memoryJournal{}
	config := &Config{Key: []byte(vectors.Key), TTL: 400 * 86400, Prefix: "/t"}
	if !strings.HasSuffix(vectors.BaseURL, config.Prefix) {
		t.Fatalf("the vectors' base URL %s changed", vectors.BaseURL)
	}
	front := NewFront(config, journal)
	front.now = func() time.Time { return time.Unix(0, int64(vectors.Now*1e9)) }
	for _, c := range vectors.Cases {
		journal.lines = nil
		expectedID := "no-event-expected"
		if c.Event != nil {
			expectedID = c.Event.ID
		}
		front.newID = func() string { return expectedID }
		request := httptest.NewRequest(c.Method, c.Path, nil)
		request.RemoteAddr = c.Remote + ":40000"
		request.Header = http.Header{}
		for name, value := range c.Headers {
			request.Header.Set(name, latin1Bytes(value))
		}
		recorder := httptest.NewRecorder()
		front.ServeHTTP(recorder, request)
		if recorder.Code != c.Status {
			t.Errorf("%s: status %d, Python %d", c.Name, recorder.Code, c.Status)
			continue
		}
		want := http.Header{}
		for _, h := range c.ResponseHeaders {
			want.Add(h[0], h[1])
		}
		if !reflect.DeepEqual(recorder.Header(), want) {
			t.Errorf("%s: headers\n go %v\n py %v", c.Name, recorder.Header(), want)
		}
		body, _ := base64.StdEncoding.DecodeString(c.Body)
		if recorder.Body.String() != string(body) {
			t.Errorf("%s: body %q, Python %q", c.Name, recorder.Body.String(), body)
		}
		switch {
		case c.Event == nil && len(journal.lines) != 0:
			t.Errorf("%s: recorded %q, Python records nothing", c.Name, journal.lines)
		case c.Event != nil && len(journal.lines) != 1:
			t.Errorf("%s: %d events recorded, Python records one", c.Name, len(journal.lines))
		case c.Event != nil:
			want := string(encodeLine(nil, c.Event.RoutingKey, []byte(c.Event.Body), c.Event.ID))
			if journal.lines[0] != want {
				t.Errorf("%s: journal line\n go %s py %s", c.Name, journal.lines[0], want)
			}
		}
	}
}
