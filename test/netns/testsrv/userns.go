package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// cmdUserns runs a command in a new user namespace whose ids 0..count-1
// map onto outer..outer+count-1, as the namespace's uid and gid -uid: the
// process then owns its sockets as uid outer+uid, as a rootless
// container's process owns them as one of its user's sub-uids. It needs
// root (the maps are written from outside, as newuidmap does), prints
// nothing of its own and exits with the command's exit code.
//
//	testsrv userns -outer 300000 -uid 1000 -- curl http://10.20.0.10/
func cmdUserns(args []string) error {
	fs := flag.NewFlagSet("userns", flag.ContinueOnError)
	outer := fs.Int("outer", 0, "first outer id of the map")
	count := fs.Int("count", 65536, "ids mapped")
	uid := fs.Int("uid", 0, "uid and gid inside the namespace")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("no command")
	}
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	idMap := []syscall.SysProcIDMap{{ContainerID: 0, HostID: *outer, Size: *count}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: idMap, GidMappings: idMap,
		Credential: &syscall.Credential{Uid: uint32(*uid), Gid: uint32(*uid), NoSetGroups: true}}
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		os.Exit(ee.ExitCode())
	}
	if err != nil {
		return fmt.Errorf("run %v in a user namespace: %w", fs.Args(), err)
	}
	return nil
}
