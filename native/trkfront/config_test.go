package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, text string) string {
	path := filepath.Join(t.TempDir(), "main.json")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigFromMainJSON(t *testing.T) {
	key := strings.Repeat("s", 32)
	path := writeConfig(t, `{"TRACKING_CRYPT_KEY": "`+key+`", "BASEDIR": "/srv/akd", "TRACKING_LINK_TTL_DAYS": 30,
		"TRACKING_BASE_URL": "https://t.example/trk/", "PROCESSES": {"trkaction": {"IP": "::1", "PORT": 9001}},
		"RABBITMQ_HOST": "ignored"}`)
	config, err := LoadConfig(path, "trkaction")
	if err != nil {
		t.Fatal(err)
	}
	if string(config.Key) != key || config.TTL != 30*86400 || config.Prefix != "/trk" ||
		config.Listen != "[::1]:9001" || config.JournalDir != "/srv/akd/run/trk/trkaction" {
		t.Fatalf("%+v", config)
	}
	// the defaults of altcraft/config.py and registry.py
	config, err = LoadConfig(writeConfig(t, `{"TRACKING_CRYPT_KEY": "`+key+`"}`), "trkimage")
	if err != nil {
		t.Fatal(err)
	}
	if config.TTL != 400*86400 || config.Prefix != "" || config.Listen != "127.0.0.1:8096" ||
		config.JournalDir != "/opt/akd/run/trk/trkimage" {
		t.Fatalf("%+v", config)
	}
}

func TestConfigProblemsNamed(t *testing.T) {
	for text, want := range map[string]string{
		`{}`:                                     "TRACKING_CRYPT_KEY: missing",
		`{"TRACKING_CRYPT_KEY": "short-secret"}`: "TRACKING_CRYPT_KEY: secret too short: 12 characters",
		`{"TRACKING_CRYPT_KEY": "` + strings.Repeat("s", 32) + `", "TRACKING_LINK_TTL_DAYS": 0}`: "TRACKING_LINK_TTL_DAYS",
		`{"TRACKING_CRYPT_KEY": 5}`: "not valid main.json",
	} {
		_, err := LoadConfig(writeConfig(t, text), "trkaction")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %q", text, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "short-secret") {
			t.Errorf("the secret is in the message: %v", err)
		}
	}
	if _, err := LoadConfig(writeConfig(t, `{}`), "webadmin"); err == nil {
		t.Error("a process that is not a tracking process was accepted")
	}
}
