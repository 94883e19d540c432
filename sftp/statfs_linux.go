package sftp

import (
	"fmt"
	"os"
	"syscall"
)

// statFS reports the figures of the filesystem holding f.
func statFS(f *os.File) (FSStat, error) {
	var st syscall.Statfs_t
	conn, err := f.SyscallConn()
	if err != nil {
		return FSStat{}, fmt.Errorf("statvfs: %w", err)
	}
	var serr error
	if err := conn.Control(func(fd uintptr) { serr = syscall.Fstatfs(int(fd), &st) }); err != nil {
		return FSStat{}, fmt.Errorf("statvfs: %w", err)
	}
	if serr != nil {
		return FSStat{}, fmt.Errorf("statvfs: %w", serr)
	}
	return FSStat{
		BlockSize:       uint64(st.Bsize),
		FragmentSize:    uint64(st.Frsize),
		Blocks:          st.Blocks,
		BlocksFree:      st.Bfree,
		BlocksAvailable: st.Bavail,
		Files:           st.Files,
		FilesFree:       st.Ffree,
		FilesAvailable:  st.Ffree,
		ID:              uint64(uint32(st.Fsid.X__val[0]))<<32 | uint64(uint32(st.Fsid.X__val[1])),
		Flags:           uint64(st.Flags) & 3,
		NameMax:         uint64(st.Namelen),
	}, nil
}
