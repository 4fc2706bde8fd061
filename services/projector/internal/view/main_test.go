package view_test

import (
	"os"
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }
