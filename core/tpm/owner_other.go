//go:build !unix

package tpm

import "io/fs"

// fileOwner reports no owner where FileInfo carries no uid (Windows): there the mode check in
// privateDir is all that applies.
func fileOwner(fs.FileInfo) (int, bool) { return 0, false }
