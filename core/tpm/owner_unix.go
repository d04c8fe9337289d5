//go:build unix

package tpm

import (
	"io/fs"
	"syscall"
)

// fileOwner returns the uid that owns fi, so the state directory can be refused when another
// user could replace the blobs and certificate records in it.
func fileOwner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
