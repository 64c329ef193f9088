package main

// The hot path's bot check of altcraft/domain/botfilter.classify. The user-agent table is a
// copy of botfilter._SCANNERS; testdata/bots.json holds the Python table and verdicts
// (written from the Python code, checked against it by tests/unit/test_trkfront_vectors.py),
// and the Go tests require this copy to equal it: neither side can change alone.

import (
	"net"
	"strings"
	"sync"
	"unicode"
)

const (
	clickAfterSigning = 2 // botfilter.CLICK_AFTER_SIGNING, seconds
	bareUserAgent     = "Mozilla/5.0"
)

type scannerClass struct {
	Reason  string   `json:"reason"`
	Needles []string `json:"needles"`
}

var scanners = []scannerClass{
	{"scanner", []string{"barracuda", "proofpoint", "mimecast", "messagelabs", "symantec", "trendmicro",
		"trend micro", "forcepoint", "sophos", "fireeye", "ironport", "cisco", "zscaler",
		"paloalto", "palo alto", "checkpoint", "check point", "fortinet", "fortiguard",
		"bitdefender", "kaspersky", "mcafee", "safelinks", "urldefense", "appriver",
		"spamtitan", "hornetsecurity", "libraesva", "vadesecure"}},
	{"office-discovery", []string{"microsoft office existence discovery", "microsoft office protocol discovery",
		"ms-office", "msoffice", "outlook-ios-linkpreview", "microsoft preview"}},
	{"crawler", []string{"bot/", "bot;", "bot)", "bot ", "crawler", "spider", "slurp", "bingpreview",
		"facebookexternalhit", "linkexpanding", "embedly", "skypeuripreview", "whatsapp",
		"preview"}},
	{"tool", []string{"python-requests", "python-urllib", "aiohttp", "httpx", "curl/", "wget/",
		"go-http-client", "java/", "libwww-perl", "okhttp", "apache-httpclient", "node-fetch",
		"axios", "postmanruntime", "scrapy"}},
	{"headless", []string{"headlesschrome", "phantomjs", "puppeteer", "playwright", "selenium"}},
}

// pySpace: str.isspace() for the code points a Latin-1 header can hold.
func pySpace(r rune) bool {
	return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f
}

func pyStrip(s string) string { return strings.TrimFunc(s, pySpace) }

// user agents repeat a lot: their verdicts are kept (botfilter keeps them the same way)
var (
	reasonsMu sync.RWMutex
	reasons   = map[string]string{}
)

const reasonsMax = 20000

func userAgentReason(ua string) string {
	reasonsMu.RLock()
	reason, ok := reasons[ua]
	reasonsMu.RUnlock()
	if ok {
		return reason
	}
	reason = scanUserAgent(ua)
	reasonsMu.Lock()
	if len(reasons) >= reasonsMax {
		reasons = map[string]string{}
	}
	reasons[ua] = reason
	reasonsMu.Unlock()
	return reason
}

func scanUserAgent(ua string) string {
	lower := strings.ToLower(ua)
	if strings.HasSuffix(lower, "bot") {
		return "crawler"
	}
	for _, class := range scanners {
		for _, needle := range class.Needles {
			if strings.Contains(lower, needle) {
				return class.Reason
			}
		}
	}
	return ""
}

// fromApple: an IPv4 address in 17.0.0.0/8 (Python's ipaddress: an IPv6 address, also an
// IPv4-mapped one, is never in an IPv4 network).
func fromApple(ip string) bool {
	if strings.Contains(ip, ":") {
		return false
	}
	parsed := net.ParseIP(ip).To4()
	return parsed != nil && parsed[0] == 17
}

// classify: botfilter.classify; userAgent as the app received it (code points, UTF-8).
func classify(kind, method, userAgent, ip string, issued uint32, now float64) string {
	if method == "HEAD" {
		return "head"
	}
	ua := pyStrip(userAgent)
	if ua == "" {
		return "no-user-agent"
	}
	if ua == bareUserAgent {
		if kind == "open" {
			return "apple-mpp"
		}
		return "bare-user-agent"
	}
	if kind == "open" && fromApple(ip) {
		return "apple-mpp"
	}
	if reason := userAgentReason(ua); reason != "" {
		return reason
	}
	if kind == "click" && issued != 0 {
		age := now - float64(issued)
		if age >= 0 && age < clickAfterSigning {
			return "click-after-signing"
		}
	}
	return ""
}
