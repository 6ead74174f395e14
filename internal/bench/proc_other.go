//go:build !linux

package bench

import (
	"errors"
	"syscall"
	"time"
)

var errNoProc = errors.New("per-process CPU and RSS are read from /proc, on Linux only")

func procCPU(int) (time.Duration, error) { return 0, errNoProc }

func procPeakRSS(int) (int64, error) { return 0, errNoProc }

func procRSS(int) (int64, error) { return 0, errNoProc }

func selfCPU() time.Duration { return 0 }

func raiseOpenFiles(uint64) error { return nil }

func childSysProcAttr() *syscall.SysProcAttr { return nil }
