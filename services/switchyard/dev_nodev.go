//go:build nodev

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newDevCmd is absent from production builds (-tags nodev, as the container
// image is built): `switchyard dev` links every service, the vendor
// emulators, an embedded NATS server and a private PostgreSQL launcher, none
// of which belongs in an operator's binary.
func newDevCmd(*cliIO) *cobra.Command {
	return &cobra.Command{
		Use:                "dev",
		Short:              "run the whole hub locally (not in this production build)",
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("this build has no dev command (it was built with -tags nodev, for production); use a development build: make build")
		},
	}
}
