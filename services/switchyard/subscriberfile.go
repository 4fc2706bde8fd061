package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// devSubscribersDir is where, in the dev hub's data folder, `switchyard
// subscriber` keeps each subscriber's login on the dev hub's embedded NATS
// server: a folder per subscriber holding its password (a
// NATS_PASSWORD_FILE) and the stream it reads. `switchyard dev` loads them
// at start and whenever they change, so `make run` takes a subscriber
// without a restart.
const devSubscribersDir = "subscribers"

// devSubscriber is one subscriber's login on the dev hub.
type devSubscriber struct {
	Name, Stream string
	PasswordFile string
	password     string
}

// readDevSubscribers lists the subscribers saved in dataDir, by name. A
// folder that is not a complete subscriber (being written) is left out.
func readDevSubscribers(dataDir string) ([]devSubscriber, error) {
	dir := filepath.Join(dataDir, devSubscribersDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []devSubscriber
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		s := devSubscriber{Name: e.Name(), PasswordFile: filepath.Join(dir, e.Name(), "password")}
		pw, err1 := os.ReadFile(s.PasswordFile)
		stream, err2 := os.ReadFile(filepath.Join(dir, e.Name(), "stream"))
		if err1 != nil || err2 != nil {
			continue
		}
		s.password, s.Stream = strings.TrimSpace(string(pw)), strings.TrimSpace(string(stream))
		if s.password != "" && s.Stream != "" {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b devSubscriber) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// saveDevSubscriber gives subscriber name a login on the dev hub of
// dataDir, reading stream: its password is kept if it has one (a
// subscriber running with it stays logged in), else made. The stream file
// is written last, as it completes the subscriber for dev.
func saveDevSubscriber(dataDir, name, stream string) (devSubscriber, error) {
	dir := filepath.Join(dataDir, devSubscribersDir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return devSubscriber{}, err
	}
	s := devSubscriber{Name: name, Stream: stream, PasswordFile: filepath.Join(dir, "password")}
	if b, err := os.ReadFile(s.PasswordFile); err == nil && strings.TrimSpace(string(b)) != "" {
		s.password = strings.TrimSpace(string(b))
	} else {
		s.password = randomHex(24)
		if err := os.WriteFile(s.PasswordFile, []byte(s.password+"\n"), 0o600); err != nil {
			return devSubscriber{}, fmt.Errorf("save the password of %s: %w", name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "stream"), []byte(stream+"\n"), 0o600); err != nil {
		return devSubscriber{}, fmt.Errorf("save the stream of %s: %w", name, err)
	}
	return s, nil
}
