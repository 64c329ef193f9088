package main

// The signed tracking token of altcraft/domain/tracking.py, read the same way: the layout,
// the HMAC-SHA256 cut to 16 bytes, the version, kind and age checks. Anything that does not
// verify is refused with no detail, exactly as tracking.verify raises InvalidToken.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"unicode/utf8"
)

const (
	tokenVersion = 1
	headSize     = 44 // >BBIIIQ16sHI
	macBytes     = 16
	// a token issued this far in the future is refused (clock skew between hosts)
	futureSlack = 300
)

// kinds in the order of tracking._KINDS: the token carries the index
var kinds = [...]string{"click", "open", "unsubscribe", "webversion", "manage"}

type Link struct {
	Kind       string `json:"kind"`
	AccountID  uint32 `json:"account_id"`
	DBID       uint32 `json:"db_id"`
	ResourceID uint32 `json:"resource_id"`
	CampaignID uint64 `json:"campaign_id"`
	ProfileID  string `json:"profile_id"`
	LinkID     uint16 `json:"link_id"`
	URL        string `json:"url"`
	Issued     uint32 `json:"issued"`
}

// tokenChars: what tracking._ALPHABET and the app's _TOKEN accept.
func tokenChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// verify returns the link a token signs, or false. now is unix seconds (a float, as in
// Python: the age checks compare against it unrounded).
func verify(token string, key []byte, ttl int64, now float64) (Link, bool) {
	if len(token) == 0 {
		return Link{}, false
	}
	for i := 0; i < len(token); i++ {
		if !tokenChar(token[i]) {
			return Link{}, false
		}
	}
	// Python's urlsafe_b64decode: no padding needed here, a length of 4n+1 is an error,
	// and unused low bits of the last character are ignored (Go's default, non-strict)
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < headSize+macBytes {
		return Link{}, false
	}
	payload, mac := raw[:len(raw)-macBytes], raw[len(raw)-macBytes:]
	h := hmac.New(sha256.New, key)
	h.Write(payload)
	if !hmac.Equal(mac, h.Sum(nil)[:macBytes]) {
		return Link{}, false
	}
	version, kind := payload[0], payload[1]
	if version != tokenVersion || int(kind) >= len(kinds) {
		return Link{}, false
	}
	be := binary.BigEndian
	link := Link{
		Kind:       kinds[kind],
		AccountID:  be.Uint32(payload[2:6]),
		DBID:       be.Uint32(payload[6:10]),
		ResourceID: be.Uint32(payload[10:14]),
		CampaignID: be.Uint64(payload[14:22]),
		ProfileID:  hex.EncodeToString(payload[22:38]),
		LinkID:     be.Uint16(payload[38:40]),
		Issued:     be.Uint32(payload[40:44]),
	}
	issued := float64(link.Issued)
	if issued > now+futureSlack || now-issued > float64(ttl) {
		return Link{}, false
	}
	url := payload[headSize:]
	if !utf8.Valid(url) {
		return Link{}, false
	}
	link.URL = string(url)
	return link, true
}
