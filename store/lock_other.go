//go:build !unix

package store

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// lockFile has no implementation here: without flock, serve cannot hold a
// lock that dies with it, so restore refuses rather than guess.
func lockFile(path string, exclusive, create bool) (*Lock, error) {
	return nil, fmt.Errorf("%w: file locks on %s", errors.ErrUnsupported, runtime.GOOS)
}

// chownLike does nothing where file ownership is not Unix's.
func chownLike(string, os.FileInfo) {}
