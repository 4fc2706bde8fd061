package gateway

import "github.com/switchyard/switchyard/platform/config"

func secretOf(s string) config.Secret { return config.NewSecret(s) }
