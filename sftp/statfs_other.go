//go:build !linux

package sftp

import (
	"fmt"
	"os"
)

// statFS is not implemented on this system.
func statFS(*os.File) (FSStat, error) {
	return FSStat{}, fmt.Errorf("statvfs: %w", ErrUnsupported)
}
