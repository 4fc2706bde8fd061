package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// devStripeEmulatorFile is where `switchyard dev` writes, in its data
// folder, the URL and test-mode key of its Stripe API emulator (mode 0600),
// so the CLI's commands find it: {"url": "http://127.0.0.1:PORT",
// "api_key": "sk_test_…"}. It exists only while dev runs the emulator (dev
// removes it when real Stripe credentials are set).
const devStripeEmulatorFile = "stripe-api.json"

// devStripeEmulator is the content of devStripeEmulatorFile.
type devStripeEmulator struct {
	URL    string `json:"url"`
	APIKey string `json:"api_key"`
}

// readDevStripeEmulator reads the Stripe emulator's URL and key that dev
// saved in dataDir.
func readDevStripeEmulator(dataDir string) (devStripeEmulator, error) {
	path := filepath.Join(dataDir, devStripeEmulatorFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return devStripeEmulator{}, err
	}
	var e devStripeEmulator
	if err := json.Unmarshal(b, &e); err != nil {
		return devStripeEmulator{}, fmt.Errorf("%s: %w", path, err)
	}
	if !strings.HasPrefix(e.URL, "http://") || !strings.HasPrefix(e.APIKey, "sk_test_") {
		return devStripeEmulator{}, fmt.Errorf("%s: want {\"url\": \"http://…\", \"api_key\": \"sk_test_…\"}", path)
	}
	return e, nil
}
