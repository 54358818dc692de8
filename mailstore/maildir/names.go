package maildir

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// maxAccountDir bounds an account directory name (NAME_MAX is 255).
const maxAccountDir = 200

// accountDirName maps a checked account name to a single, safe directory
// name: bytes in [a-z0-9@+=_-] and non-leading dots stay, every other byte
// becomes %XX. The mapping is injective, so two accounts never share a
// directory, and the result contains no separator, NUL or leading dot. Names
// whose encoding would be too long are cut and suffixed with '~' and a hash
// ('~' never appears otherwise). The address is also written inside the
// directory, so the mapping never has to be reversed.
func accountDirName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9',
			c == '@', c == '+', c == '=', c == '_', c == '-',
			c == '.' && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	s := b.String()
	if len(s) > maxAccountDir {
		sum := sha256.Sum256([]byte(name))
		cut := maxAccountDir - 1 - 32
		// Do not cut inside a %XX escape.
		for cut > 0 && strings.LastIndexByte(s[:cut], '%') >= cut-2 {
			cut--
		}
		s = s[:cut] + "~" + hex.EncodeToString(sum[:16])
	}
	return s
}
