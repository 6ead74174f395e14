//go:build !unix

package deploy

// lockDir takes no lock where flock(2) does not exist: concurrent account
// changes of an operator directory must then be avoided by hand.
func (l Layout) lockDir(name string) (unlock func(), err error) { return func() {}, nil }
