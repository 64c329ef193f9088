package main

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"testing"
)

// BenchmarkClick: one verified click, its event built and appended to a real journal file
// (no network): the front's own cost per click, beside net/http's.
func BenchmarkClick(b *testing.B) {
	var vectors struct {
		Key   string
		Cases []struct{ Path string }
	}
	data, _ := os.ReadFile("testdata/requests.json")
	json.Unmarshal(data, &vectors)
	journal, err := OpenJournal(b.TempDir(), segmentBytes)
	if err != nil {
		b.Fatal(err)
	}
	defer journal.Close()
	front := NewFront(&Config{Key: []byte(vectors.Key), TTL: 1 << 40, Prefix: "/t"}, journal)
	request := httptest.NewRequest("GET", vectors.Cases[0].Path, nil)
	request.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		recorder := httptest.NewRecorder()
		front.ServeHTTP(recorder, request)
		if recorder.Code != 302 {
			b.Fatalf("status %d", recorder.Code)
		}
	}
}
