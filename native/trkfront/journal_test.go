package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestJournalSegmentsAsTheRelayExpects(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "trk", "trkaction")
	pid := strconv.Itoa(os.Getpid())
	// a segment an earlier process with this pid left: the journal appends after it
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, pid+".4.jsonl"), []byte("old\n"), 0o600)
	journal, err := OpenJournal(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(`{"rk":"action.click","id":"x","event":{"a":"0123456789012345678901234567890123456789"}}` + "\n")
	for i := 0; i < 3; i++ {
		if err := journal.Append(line); err != nil {
			t.Fatal(err)
		}
	}
	if err := journal.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(dir)
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v (%v), want 0700", info.Mode().Perm(), err)
	}
	// 100-byte segments: each line (~80 bytes) fills one, the next line opens the next
	for segment, want := range map[int]int{5: 2, 6: 1} {
		path := filepath.Join(dir, pid+"."+strconv.Itoa(segment)+".jsonl")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("segment %d: %v", segment, err)
		}
		if len(data) != want*len(line) {
			t.Errorf("segment %d holds %d bytes, want %d lines", segment, len(data), want)
		}
		info, _ := os.Stat(path)
		if info.Mode().Perm() != 0o600 {
			t.Errorf("segment %d mode %v, want 0600", segment, info.Mode().Perm())
		}
		if p, s := writerOf(filepath.Base(path)); p != os.Getpid() || s != segment {
			t.Errorf("%s: writer_of gives (%d, %d)", path, p, s)
		}
	}
}

type failingJournal struct{}

func (failingJournal) Append([]byte) error { return errShortWrite }

func TestNoAnswerWithoutTheEventWritten(t *testing.T) {
	var vectors struct {
		Key   string
		Now   float64
		Cases []struct{ Name, Path string }
	}
	load(t, "requests.json", &vectors)
	front := NewFront(&Config{Key: []byte(vectors.Key), TTL: 400 * 86400, Prefix: "/t"}, failingJournal{})
	front.now = func() time.Time { return time.Unix(0, int64(vectors.Now*1e9)) }
	for _, c := range vectors.Cases[:1] {
		recorder := httptest.NewRecorder()
		front.ServeHTTP(recorder, httptest.NewRequest("GET", c.Path, nil))
		if recorder.Code != 503 || recorder.Header().Get("Location") != "" {
			t.Errorf("%s with the journal failing: %d %v, want 503 and no redirect", c.Name, recorder.Code, recorder.Header())
		}
	}
}
