package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgCPU is a cgroup's cpu.stat (µs): the CPU time of every task that ran
// in it, threads and exited processes included, and the kernel's work in
// their system calls (with the packet processing the kernel does inline
// in them, on loopback and veth most of the receiver's side too). The
// cgroup2 core provides it without the cpu controller.
type cgCPU struct{ usage, user, system int64 }

func readCgCPU(dir string) cgCPU {
	var c cgCPU
	b, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return c
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, " ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "usage_usec":
			c.usage = n
		case "user_usec":
			c.user = n
		case "system_usec":
			c.system = n
		}
	}
	return c
}

func (c cgCPU) sub(o cgCPU) cgCPU {
	return cgCPU{c.usage - o.usage, c.user - o.user, c.system - o.system}
}
