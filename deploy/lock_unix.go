//go:build unix

package deploy

import (
	"errors"
	"os"
	"syscall"
)

// lockDir takes an exclusive flock(2) lock on the file name of the
// directory, waiting for it, and returns the function that drops it. The
// kernel drops it too when the process exits, however it exits.
func (l Layout) lockDir(name string) (unlock func(), err error) {
	f, err := os.OpenFile(l.Path(name), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
