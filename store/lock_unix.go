//go:build unix

package store

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// lockFile takes a flock(2) lock on the file at path without waiting:
// exclusive or shared. It returns ErrInUse when another process holds a
// conflicting lock, and errNoLockFile when the file does not exist and
// create is false.
func lockFile(path string, exclusive, create bool) (*Lock, error) {
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, fs.ErrNotExist) && !create {
		return nil, errNoLockFile
	}
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, ErrInUse
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Lock{release: f.Close}, nil // closing the file drops the lock
}

// chownLike gives the file at path the owner and group of fi, where this
// process may; otherwise it leaves them.
func chownLike(path string, fi os.FileInfo) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		os.Chown(path, int(st.Uid), int(st.Gid))
	}
}
