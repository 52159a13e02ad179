package suggest

import "time"

// timeAt is a fixed test time, h hours into 2026-11-30 UTC.
func timeAt(h int) time.Time { return time.Date(2026, 11, 30, h, 0, 0, 0, time.UTC) }
