//go:build unix

package diskspace

import "golang.org/x/sys/unix"

func statfs(dir string) (Usage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return Usage{}, err
	}
	bs := int64(st.Bsize) // int64 on Linux, uint32 on the BSDs
	return Usage{Free: int64(st.Bavail) * bs, Total: int64(st.Blocks) * bs}, nil
}
