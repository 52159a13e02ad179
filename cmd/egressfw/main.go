package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/daemon"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.0.0-dev"

// Exit codes shared by every command.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and the answer is "no" (deny, invalid config, error)
	exitUsage = 2 // bad flags or arguments, or a config that cannot be loaded
)

// command is one subcommand: its one-line summary and its entry point, which
// parses its own flags from args and returns the process exit code.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"run":          {"run the daemon: apply rules, listen, serve", cmdRun},
		"check-config": {"validate the config file; exit 0 if valid", cmdCheckConfig},
		"explain":      {"dry-run a destination for a tenant and print the decision", cmdExplain},
		"rules":        {"print the nftables ruleset and routing egressfw would install", cmdRules},
		"cleanup":      {"remove egressfw's nftables table, ip rules and routes", cmdCleanup},
		"suggest":      {"turn the connection log into allow_domains/allow_internal per tenant", cmdSuggest},
		"status":       {"show the running egressfw: tenants, last minute, denied names, ruleset, reload", cmdStatus},
		"guard":        {"at boot: make tenants fail closed until egressfw runs", cmdGuard},
		"version":      {"print the version", cmdVersion},
	}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "egressfw: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return exitUsage
	}
	return c.run(args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintf(w, "Usage: egressfw COMMAND [flags]\n\nCommands:\n")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-13s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'egressfw COMMAND --help' for a command's flags.\n")
}

// newFlags returns a FlagSet for a command that writes its help to stderr
// and a --config flag bound to *cfgPath.
func newFlags(name, argsHelp, about string, stderr io.Writer, cfgPath *string) *flag.FlagSet {
	fs := flag.NewFlagSet("egressfw "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(cfgPath, "config", config.DefaultPath, "path of the config file")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: egressfw %s [flags] %s\n\n%s\n\nFlags:\n", name, argsHelp, about)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and maps -h/--help to exit 0 and bad flags to 2.
// It returns done=true with the exit code when the command must stop.
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK, true
	case err != nil:
		return exitUsage, true
	}
	return exitOK, false
}

// loadFor parses a command that takes no arguments and loads its config.
// A config that fails to load exits with badConfig; done=true means return code.
func loadFor(fs *flag.FlagSet, args []string, path *string, stderr io.Writer, badConfig int) (cfg *config.Config, code int, done bool) {
	if code, done := parseFlags(fs, args); done {
		return nil, code, true
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return nil, exitUsage, true
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "egressfw: %v\n", err)
		return nil, badConfig, true
	}
	return cfg, exitOK, false
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	var path string
	fs := newFlags("check-config", "", "Validate the config file. Exit 0 if valid; otherwise print every problem, naming its key, and exit 1.\n"+
		"Also checks the tenants' uids against firewall.subuid_file: a sub-uid range two tenants would share is\n"+
		"an error; sub-uids a tenant leaves uncovered, and lines the file has wrong, are warnings (exit 0).", stderr, &path)
	cfg, code, done := loadFor(fs, args, &path, stderr, exitFail)
	if done {
		return code
	}
	warnings, err := daemon.CheckHost(cfg)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "egressfw: warning: %s\n", w)
	}
	if err != nil {
		fmt.Fprintf(stderr, "egressfw: %s: %v\n", path, err)
		return exitFail
	}
	fmt.Fprintf(stdout, "%s: valid (%d tenant%s)\n", path, len(cfg.Tenants), plural(len(cfg.Tenants)))
	return exitOK
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	var path string
	fs := newFlags("version", "", "Print the version.", stderr, &path)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	fmt.Fprintf(stdout, "egressfw %s\n", version)
	return exitOK
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
