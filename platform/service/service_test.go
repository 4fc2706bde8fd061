package service_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/service"
)

func TestStartAndCloseInReverse(t *testing.T) {
	var out bytes.Buffer
	b, err := service.Start(context.Background(), "demo", "info", config.MapEnv(nil), &out)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	b.Stack.Push("nats", func(context.Context) error { order = append(order, "nats"); return errors.New("drain failed") })
	b.Stack.Push("http", func(context.Context) error { order = append(order, "http"); return nil })
	b.Log.Info("hello")
	runErr := errors.New("run failed")
	b.Close(context.Background(), &runErr)
	if strings.Join(order, ",") != "http,nats" {
		t.Errorf("closers ran %v, want http then nats", order)
	}
	if !strings.Contains(runErr.Error(), "run failed") || !strings.Contains(runErr.Error(), "drain failed") {
		t.Errorf("joined error %q lacks one of the errors", runErr)
	}
	if !strings.Contains(out.String(), `"service":"demo"`) {
		t.Errorf("log lacks the service name: %s", out.String())
	}
}
