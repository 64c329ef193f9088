package main

// What the front reads of main.json: the keys the Python tracking process reads for the same
// routes (altcraft/config.py MainConfig), with the same defaults.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	defaultConfigPath = "/opt/akd/config/main.json" // config.DEFAULT_CONFIG_PATH
	configEnv         = "AKD_CONFIG"                // config.CONFIG_ENV
	secretMinLength   = 32
)

// default listen ports of the processes whose /c and /o this front can serve (registry.py)
var defaultPorts = map[string]int{"trkaction": 8095, "trkimage": 8096}

type processSettings struct {
	IP   *string `json:"IP"`
	PORT *int    `json:"PORT"`
}

type mainJSON struct {
	BASEDIR                *string                    `json:"BASEDIR"`
	TRACKING_CRYPT_KEY     *string                    `json:"TRACKING_CRYPT_KEY"`
	TRACKING_BASE_URL      *string                    `json:"TRACKING_BASE_URL"`
	TRACKING_LINK_TTL_DAYS *int                       `json:"TRACKING_LINK_TTL_DAYS"`
	PROCESSES              map[string]processSettings `json:"PROCESSES"`
}

type Config struct {
	Key        []byte
	TTL        int64  // seconds
	Prefix     string // the path of TRACKING_BASE_URL, without its trailing slash
	Listen     string // host:port
	JournalDir string // <BASEDIR>/run/trk/<process>: the directory that process's relay ships
}

func configPath(explicit string) string {
	if explicit != "" {
		return explicit
	}
	if env := os.Getenv(configEnv); env != "" {
		return env
	}
	return defaultConfigPath
}

// LoadConfig reads main.json for the tracking process `process`; every problem is named.
func LoadConfig(path, process string) (*Config, error) {
	port, known := defaultPorts[process]
	if !known {
		return nil, fmt.Errorf("--process %q: this front serves the clicks and opens of trkaction or trkimage", process)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read: %w", path, err)
	}
	var data mainJSON
	if err := json.Unmarshal(text, &data); err != nil {
		return nil, fmt.Errorf("%s: not valid main.json: %w", path, err)
	}
	config := &Config{TTL: 400 * 86400}
	if data.TRACKING_CRYPT_KEY == nil || *data.TRACKING_CRYPT_KEY == "" {
		return nil, fmt.Errorf("%s: TRACKING_CRYPT_KEY: missing", path)
	}
	// config.SECRET_MIN_LENGTH; the value itself is never put into a message
	if n := utf8.RuneCountInString(*data.TRACKING_CRYPT_KEY); n < secretMinLength {
		return nil, fmt.Errorf("%s: TRACKING_CRYPT_KEY: secret too short: %d characters, at least %d required",
			path, n, secretMinLength)
	}
	config.Key = []byte(*data.TRACKING_CRYPT_KEY)
	if days := data.TRACKING_LINK_TTL_DAYS; days != nil {
		if *days < 1 || *days > 3650 {
			return nil, fmt.Errorf("%s: TRACKING_LINK_TTL_DAYS: not in 1..3650", path)
		}
		config.TTL = int64(*days) * 86400
	}
	base := "http://127.0.0.1:8095"
	if data.TRACKING_BASE_URL != nil {
		base = *data.TRACKING_BASE_URL
	}
	parsed, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("%s: TRACKING_BASE_URL: %w", path, err)
	}
	config.Prefix = strings.TrimRight(parsed.Path, "/")
	basedir := "/opt/akd"
	if data.BASEDIR != nil {
		basedir = *data.BASEDIR
	}
	config.JournalDir = filepath.Join(basedir, "run", "trk", process)
	host := "127.0.0.1"
	if settings, ok := data.PROCESSES[process]; ok {
		if settings.IP != nil && *settings.IP != "" {
			host = *settings.IP
		}
		if settings.PORT != nil && *settings.PORT != 0 {
			port = *settings.PORT
		}
	}
	config.Listen = net.JoinHostPort(host, strconv.Itoa(port))
	return config, nil
}
