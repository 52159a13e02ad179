package main

import (
	"github.com/egressfw/egressfw/internal/daemon"
	"github.com/egressfw/egressfw/internal/sdnotify"
)

// newNotifier talks sd_notify when systemd started us (NOTIFY_SOCKET set)
// and does nothing otherwise, so `egressfw run` is also a plain foreground
// daemon.
func newNotifier() daemon.Notifier { return sdnotify.New() }
