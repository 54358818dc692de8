//go:build !unix

package diskspace

import "errors"

func statfs(string) (Usage, error) {
	return Usage{}, errors.New("diskspace: statfs not supported on this system")
}
