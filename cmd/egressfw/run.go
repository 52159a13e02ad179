package main

import (
	"fmt"
	"io"
)

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "egressfw run: not wired yet")
	return exitFail
}

func cmdRules(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "egressfw rules: not wired yet")
	return exitFail
}

func cmdCleanup(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "egressfw cleanup: not wired yet")
	return exitFail
}
