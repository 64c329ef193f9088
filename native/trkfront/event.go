package main

// The event body of altcraft/domain/events.action, byte for byte: the same keys in the same
// order, json.dumps' escaping (ensure_ascii), texts cut to 2,048 characters. procactions
// decodes it with events.decode; nothing downstream knows which front wrote it.

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

const maxText = 2048 // events._MAX_TEXT, in characters

// routing keys: events._ROUTING_KEYS of the two kinds this front records
var routingKeys = map[string]string{"click": "action.click", "open": "action.open"}

// pyJSONString appends s as Python's json.dumps(s) (ensure_ascii=True) writes it. s is a
// sequence of code points given as UTF-8.
func pyJSONString(out []byte, s string) []byte {
	const digits = "0123456789abcdef"
	u4 := func(out []byte, r rune) []byte {
		return append(out, '\\', 'u', digits[r>>12&15], digits[r>>8&15], digits[r>>4&15], digits[r&15])
	}
	out = append(out, '"')
	for _, r := range s {
		switch {
		case r == '"':
			out = append(out, '\\', '"')
		case r == '\\':
			out = append(out, '\\', '\\')
		case r == '\n':
			out = append(out, '\\', 'n')
		case r == '\r':
			out = append(out, '\\', 'r')
		case r == '\t':
			out = append(out, '\\', 't')
		case r == '\b':
			out = append(out, '\\', 'b')
		case r == '\f':
			out = append(out, '\\', 'f')
		case r >= 0x20 && r <= 0x7e:
			out = append(out, byte(r))
		case r > 0xffff:
			r -= 0x10000
			out = u4(out, 0xd800|(r>>10)&0x3ff)
			out = u4(out, 0xdc00|r&0x3ff)
		default: // other controls, DEL and everything beyond ASCII
			out = u4(out, r)
		}
	}
	return append(out, '"')
}

// cut: the first n code points of s (Python's s[:n]).
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	count := 0
	for i := range s {
		if count == n {
			return s[:i]
		}
		count++
	}
	return s
}

// latin1: a header value as WSGI (PEP 3333) hands it to the Python app: each byte one
// code point. Returned as UTF-8.
func latin1(b string) string {
	for i := 0; i < len(b); i++ {
		if b[i] >= 0x80 {
			out := make([]byte, 0, len(b)+8)
			for j := 0; j < len(b); j++ {
				out = utf8.AppendRune(out, rune(b[j]))
			}
			return string(out)
		}
	}
	return b
}

// isoMillis: events.iso_now, UTC with milliseconds.
func isoMillis(out []byte, millis int64) []byte {
	t := time.UnixMilli(millis).UTC()
	out = t.AppendFormat(out, "2006-01-02T15:04:05")
	ms := millis % 1000
	if ms < 0 {
		ms += 1000
	}
	return append(out, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// eventBody: events.action(link, kind, ip=, user_agent=, is_bot=, bot_reason=, now=)
// with the given event id; millis is int(now * 1000).
func eventBody(out []byte, eventID string, link *Link, kind, ip, userAgent, botReason string, millis int64) []byte {
	url := ""
	if kind == "click" {
		url = cut(link.URL, maxText)
	}
	out = append(out, `{"event_id":"`...)
	out = append(out, eventID...)
	out = append(out, `","kind":`...)
	out = pyJSONString(out, kind)
	out = append(out, `,"time":"`...)
	out = isoMillis(out, millis)
	out = append(out, `","account_id":`...)
	out = strconv.AppendUint(out, uint64(link.AccountID), 10)
	out = append(out, `,"db_id":`...)
	out = strconv.AppendUint(out, uint64(link.DBID), 10)
	out = append(out, `,"resource_id":`...)
	out = strconv.AppendUint(out, uint64(link.ResourceID), 10)
	out = append(out, `,"campaign_id":`...)
	out = strconv.AppendUint(out, link.CampaignID, 10)
	out = append(out, `,"profile_id":`...)
	out = pyJSONString(out, link.ProfileID)
	out = append(out, `,"channel":"email","link_id":`...)
	out = strconv.AppendUint(out, uint64(link.LinkID), 10)
	out = append(out, `,"url":`...)
	out = pyJSONString(out, url)
	out = append(out, `,"ip":`...)
	out = pyJSONString(out, ip)
	out = append(out, `,"user_agent":`...)
	out = pyJSONString(out, cut(userAgent, maxText))
	if botReason != "" {
		out = append(out, `,"is_bot":true,"bot_reason":`...)
	} else {
		out = append(out, `,"is_bot":false,"bot_reason":`...)
	}
	out = pyJSONString(out, botReason)
	out = append(out, `,"issued":`...)
	out = strconv.AppendUint(out, uint64(link.Issued), 10)
	return append(out, '}')
}

// randomIDs: version 4 UUIDs from the kernel's generator, read 4 KiB at a time (one
// getrandom call per 256 events instead of one each).
type randomIDs struct {
	mu   sync.Mutex
	buf  [4096]byte
	used int
}

func newRandomIDs() *randomIDs { return &randomIDs{used: 4096} }

func (g *randomIDs) next() string {
	var b [16]byte
	g.mu.Lock()
	if g.used+16 > len(g.buf) {
		if _, err := rand.Read(g.buf[:]); err != nil {
			g.mu.Unlock()
			panic("no random bytes from the kernel: " + err.Error())
		}
		g.used = 0
	}
	copy(b[:], g.buf[g.used:g.used+16])
	g.used += 16
	g.mu.Unlock()
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}
