package main

// The event journal of altcraft/services/trk/journal.py, written the same way: one file per
// writer and segment, <pid>.<segment>.jsonl in the tracking process's spool directory, one
// line per event appended with one write(2) on an O_APPEND descriptor before the answer goes
// out. The Python relay (relay.py) reads these files as it reads a worker's: it publishes
// every line, finishes a segment once a later one of the same pid exists or the pid is gone,
// and deletes it when every line is confirmed.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

const segmentBytes = 8 << 20 // journal.SEGMENT_BYTES

// encodeLine: journal.encode_line.
func encodeLine(out []byte, routingKey string, body []byte, messageID string) []byte {
	out = append(out, `{"rk":"`...)
	out = append(out, routingKey...)
	out = append(out, `","id":"`...)
	out = append(out, messageID...)
	out = append(out, `","event":`...)
	out = append(out, body...)
	return append(out, '}', '\n')
}

// writerOf: journal.writer_of, (pid, segment) of a file name; segment -1 for a spool file.
func writerOf(name string) (int, int) {
	parts := strings.Split(name, ".")
	pid, segment := 0, -1
	if digits(parts[0]) {
		pid, _ = strconv.Atoi(parts[0])
	}
	if len(parts) == 3 && digits(parts[1]) {
		segment, _ = strconv.Atoi(parts[1])
	}
	return pid, segment
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

type Journal struct {
	dir          string
	segmentBytes int64
	pid          int
	mu           sync.Mutex
	file         *os.File
	fd           int
	segment      int
	size         int64
}

func OpenJournal(dir string, segmentBytes int64) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("the event journal's directory %s: %w", dir, err)
	}
	j := &Journal{dir: dir, segmentBytes: segmentBytes, pid: os.Getpid(), segment: -1}
	// a pid reused from an earlier writer appends after the segments it left
	names, err := filepath.Glob(filepath.Join(dir, strconv.Itoa(j.pid)+".*.jsonl"))
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if _, segment := writerOf(filepath.Base(name)); segment > j.segment {
			j.segment = segment
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.next(); err != nil {
		return nil, err
	}
	return j, nil
}

// next opens the following segment; the old one is closed only after: the relay takes a
// segment as finished once a later one of the same writer exists.
func (j *Journal) next() error {
	j.segment++
	path := filepath.Join(j.dir, fmt.Sprintf("%d.%d.jsonl", j.pid, j.segment))
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("the event journal %s: %w", path, err)
	}
	info, err := file.Stat()
	if err != nil {
		file.Close()
		return err
	}
	old := j.file
	j.file, j.fd, j.size = file, int(file.Fd()), info.Size()
	if old != nil {
		old.Close()
	}
	return nil
}

var errShortWrite = errors.New("short write to the event journal (disk full?)")

// Append writes one line with one write(2). A line that could not be written whole is
// refused; the next starts a new segment, so the relay never reads a torn line followed
// by good ones as one.
func (j *Journal) Append(line []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.file == nil || j.size >= j.segmentBytes {
		if err := j.next(); err != nil {
			return err
		}
	}
	n, err := syscall.Write(j.fd, line)
	if n > 0 {
		j.size += int64(n)
	}
	if err == nil && n == len(line) {
		return nil
	}
	j.size = j.segmentBytes
	if err != nil {
		return fmt.Errorf("cannot append to the event journal in %s: %w", j.dir, err)
	}
	return errShortWrite
}

// Close: the front stops; what it wrote goes to the disk before it exits.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.file == nil {
		return nil
	}
	err := j.file.Sync()
	if cerr := j.file.Close(); err == nil {
		err = cerr
	}
	j.file = nil
	return err
}
