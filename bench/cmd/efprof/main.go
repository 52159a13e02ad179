// Command efprof is the benchmark's profiling variant of `egressfw run`: the
// same internal/daemon.Run, in-process, under runtime/pprof (egressfw has no
// pprof endpoint, and this machine's perf has no hardware counters). It
// writes a CPU profile from start to SIGTERM (and the allocations made
// meanwhile, beside it) and, on SIGUSR1, a heap and a goroutine profile of
// that moment. SIGHUP reloads, as in egressfw.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/egressfw/egressfw/internal/daemon"
)

// quiet is a Notifier for a daemon that no supervisor watches.
type quiet struct{}

func (quiet) Ready(string)                                 {}
func (quiet) Reloading()                                   {}
func (quiet) Stopping()                                    {}
func (quiet) Status(string)                                {}
func (quiet) Watchdog(ctx context.Context, _ func() error) { <-ctx.Done() }

func main() {
	cfgPath := flag.String("config", "", "egressfw config")
	cpuOut := flag.String("cpuprofile", "cpu.pprof", "CPU profile written at exit")
	snapPrefix := flag.String("snapshot", "snap", "SIGUSR1 writes PREFIX.heap.pprof and PREFIX.goroutine.txt")
	flag.Parse()
	if err := run(*cfgPath, *cpuOut, *snapPrefix); err != nil {
		fmt.Fprintf(os.Stderr, "efprof: %v\n", err)
		os.Exit(1)
	}
}

func run(cfgPath, cpuOut, snapPrefix string) error {
	f, err := os.Create(cpuOut)
	if err != nil {
		return fmt.Errorf("create CPU profile: %w", err)
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return fmt.Errorf("start CPU profile: %w", err)
	}
	defer pprof.StopCPUProfile()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		for s := range sigs {
			if s == syscall.SIGHUP {
				reload <- struct{}{}
				continue
			}
			snapshot(snapPrefix)
		}
	}()
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	err = daemon.Run(ctx, daemon.Options{ConfigPath: cfgPath, Version: "efprof", Log: log,
		Notifier: quiet{}, Reload: reload})
	writeAllocs(cpuOut + ".allocs")
	return err
}

// writeAllocs writes every allocation since the start (pprof's allocs
// profile, sampled; alloc_objects for counts) and the exact count
// (MemStats.Mallocs) beside it, for allocations per connection.
func writeAllocs(path string) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "efprof: %v\n", err)
		return
	}
	defer f.Close()
	_ = pprof.Lookup("allocs").WriteTo(f, 0)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	_ = os.WriteFile(path+".count", fmt.Appendf(nil, "%d %d\n", ms.Mallocs, ms.NumGC), 0o644)
}

// snapshot writes the heap (after a GC, so it shows live memory) and every
// goroutine's stack.
func snapshot(prefix string) {
	runtime.GC()
	for name, debug := range map[string]int{"heap": 0, "goroutine": 1} {
		ext := map[string]string{"heap": ".heap.pprof", "goroutine": ".goroutine.txt"}[name]
		f, err := os.Create(prefix + ext)
		if err != nil {
			fmt.Fprintf(os.Stderr, "efprof: %v\n", err)
			continue
		}
		_ = pprof.Lookup(name).WriteTo(f, debug)
		f.Close()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	memstats := fmt.Sprintf("goroutines %d\nHeapAlloc %d KiB\nHeapInuse %d KiB\nHeapIdle %d KiB\nHeapReleased %d KiB\n"+
		"StackInuse %d KiB\nMSpanInuse %d KiB\nOtherSys %d KiB\nGCSys %d KiB\nSys %d KiB\nNumGC %d\n",
		runtime.NumGoroutine(), ms.HeapAlloc>>10, ms.HeapInuse>>10, ms.HeapIdle>>10, ms.HeapReleased>>10,
		ms.StackInuse>>10, ms.MSpanInuse>>10, ms.OtherSys>>10, ms.GCSys>>10, ms.Sys>>10, ms.NumGC)
	if err := os.WriteFile(prefix+".memstats.txt", []byte(memstats), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "efprof: %v\n", err)
	}
	fmt.Fprintln(os.Stderr, "efprof: snapshot written")
}
