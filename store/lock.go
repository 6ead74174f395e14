package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrInUse means a relay holds the database's serve lock: it is serving
// the database, which must not be replaced under it.
var ErrInUse = errors.New("a relay is serving the database")

// LockPath returns the path of the lock file beside the database at path.
// Every relay serving the database holds a shared lock on it (LockServing);
// Restore takes it exclusively. The kernel drops a process's locks when it
// exits, however it exits, so a relay killed with SIGKILL leaves nothing
// stale behind: the file is only a name to lock, its content is empty.
func LockPath(path string) string { return path + ".lock" }

// A Lock is a held lock on a database's lock file; Release drops it.
type Lock struct {
	release func() error
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.release == nil {
		return nil
	}
	return l.release()
}

// lockWait is how long LockServing waits for a restore to finish.
const lockWait = 10 * time.Second

// LockServing takes a shared lock on the lock file of the database at path,
// creating the file if need be, for as long as the caller serves the
// database. Any number of relays hold it together; it waits up to ten
// seconds while a restore holds the lock exclusively.
func LockServing(ctx context.Context, path string) (*Lock, error) {
	deadline := time.Now().Add(lockWait)
	for {
		l, err := lockFile(LockPath(path), false, true)
		if !errors.Is(err, ErrInUse) {
			if err != nil {
				return nil, fmt.Errorf("lock %s: %w", LockPath(path), err)
			}
			return l, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("lock %s: a restore of the database is under way (it holds the lock): start serve again when it has finished", LockPath(path))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Serving reports whether a relay holds the serve lock of the database at
// path. It creates nothing: with no lock file, no relay has ever served it.
func Serving(path string) (bool, error) {
	l, err := lockFile(LockPath(path), true, false)
	switch {
	case errors.Is(err, ErrInUse):
		return true, nil
	case errors.Is(err, errNoLockFile):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("lock %s: %w", LockPath(path), err)
	}
	return false, l.Release()
}

// lockExclusive takes the lock of the database at path exclusively,
// without waiting: ErrInUse while any relay serves it.
func lockExclusive(path string) (*Lock, error) {
	l, err := lockFile(LockPath(path), true, true)
	if err != nil && !errors.Is(err, ErrInUse) {
		return nil, fmt.Errorf("lock %s: %w", LockPath(path), err)
	}
	return l, err
}

var errNoLockFile = errors.New("no lock file")
