//go:build nodev

package main

import (
	"context"
	"errors"
	"io"
)

// devCmd is absent from production builds (-tags nodev, as the container
// image is built): `switchyard dev` links every service, the vendor
// emulators, an embedded NATS server and a private PostgreSQL launcher, none
// of which belongs in an operator's binary.
func devCmd(context.Context, []string, func(string) string, io.Writer, io.Writer) error {
	return errors.New("switchyard dev: this build has no dev command (it was built with -tags nodev, for production); use a development build: make build")
}
