package main

import (
	"context"

	"github.com/egressfw/egressfw/internal/daemon"
)

type noopNotifier struct{}

func (noopNotifier) Ready(string)                                {}
func (noopNotifier) Reloading()                                  {}
func (noopNotifier) Stopping()                                   {}
func (noopNotifier) Status(string)                               {}
func (noopNotifier) Watchdog(ctx context.Context, _ func() bool) {}

func newNotifier() daemon.Notifier { return noopNotifier{} }
