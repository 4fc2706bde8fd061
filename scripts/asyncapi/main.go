// Command asyncapi writes the hub's machine-readable NATS contract,
// proto/subjects.json and proto/asyncapi.yaml, from the code that defines
// it (package contract). `make proto` runs it after buf generate:
//
//	go run ./scripts/asyncapi -proto proto
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/switchyard/switchyard/scripts/asyncapi/contract"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "asyncapi:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("asyncapi", flag.ContinueOnError)
	dir := fs.String("proto", "proto", "the proto/ folder: .proto sources are read from it, the two files written into it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := contract.Load(ctx, *dir)
	if err != nil {
		return err
	}
	if err := c.WriteFiles(*dir); err != nil {
		return err
	}
	fmt.Printf("asyncapi: wrote %s/%s and %s/%s (%d subjects)\n", *dir, contract.SubjectsFile, *dir, contract.AsyncAPIFile, len(c.Subjects))
	return nil
}
