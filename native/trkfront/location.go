package main

// app.safe_location: the Location value for a signed URL, or "" when it must not be
// redirected to: control characters or spaces, a scheme other than http(s), no host.

import (
	"net"
	"strings"
)

// app._URL_SAFE plus what urllib.parse.quote always keeps
const urlSafe = "!#$%&'()*+,-./:;=?@[]_~"

func safeLocation(url string) string {
	if url == "" {
		return ""
	}
	ascii := true
	for _, r := range url {
		if r <= 0x20 || r == 0x7f {
			return ""
		}
		if r > 0x7f {
			ascii = false
		}
	}
	scheme, rest, ok := splitScheme(url)
	if !ok || (scheme != "http" && scheme != "https") || !strings.HasPrefix(rest, "//") {
		return ""
	}
	netloc := rest[2:]
	if end := strings.IndexAny(netloc, "/?#"); end >= 0 {
		netloc = netloc[:end]
	}
	if netloc == "" || !bracketsBalanced(netloc) {
		return ""
	}
	if ascii {
		return url
	}
	return quote(url)
}

// splitScheme: urllib.parse.urlsplit's scheme (lower-cased): a letter, then letters,
// digits, + - . up to the first colon.
func splitScheme(url string) (string, string, bool) {
	colon := strings.IndexByte(url, ':')
	if colon <= 0 || !isLetter(url[0]) {
		return "", url, false
	}
	for i := 0; i < colon; i++ {
		c := url[i]
		if !(isLetter(c) || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return "", url, false
		}
	}
	return strings.ToLower(url[:colon]), url[colon+1:], true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// bracketsBalanced: urlsplit raises ValueError ("Invalid IPv6 URL") for a netloc with one
// bracket and not the other; the Python app then answers with an error and records nothing.
// Such a URL is refused here (404, nothing recorded).
func bracketsBalanced(netloc string) bool {
	open, close := strings.Contains(netloc, "["), strings.Contains(netloc, "]")
	if open != close {
		return false
	}
	if !open {
		return true
	}
	// urlsplit's _check_bracketed_host: an IPv6 address (or IPvFuture), never IPv4
	host := netloc[strings.IndexByte(netloc, '[')+1:]
	if end := strings.IndexByte(host, ']'); end >= 0 {
		host = host[:end]
	}
	if strings.HasPrefix(host, "v") {
		dot := strings.IndexByte(host, '.')
		if dot < 2 || dot == len(host)-1 {
			return false
		}
		for i := 1; i < dot; i++ {
			if !strings.ContainsRune("0123456789abcdefABCDEF", rune(host[i])) {
				return false
			}
		}
		return true
	}
	if zone := strings.IndexByte(host, '%'); zone >= 0 {
		host = host[:zone]
	}
	return strings.Contains(host, ":") && net.ParseIP(host) != nil
}

// quote: urllib.parse.quote(url, safe=_URL_SAFE) on the UTF-8 bytes.
func quote(url string) string {
	const hexdigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(url); i++ {
		c := url[i]
		if isLetter(c) || c >= '0' && c <= '9' || strings.IndexByte(urlSafe, c) >= 0 {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hexdigits[c>>4])
			b.WriteByte(hexdigits[c&15])
		}
	}
	return b.String()
}
