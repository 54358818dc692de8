package smtpd

import (
	"testing"

	"github.com/posthouse/posthouse/internal/forkcheck"
)

// goSMTPFork is the go-smtp fork in third_party/go-smtp: upstream plus the
// patch series in third_party/go-smtp/patches (see its POSTHOUSE-README.md).
var goSMTPFork = forkcheck.Fork{Dir: "../third_party/go-smtp", GoMod: "../go.mod"}

// TestGoSMTPPatchSeries: the fork is upstream plus its series, byte for
// byte, each patch with its reason and test (forkcheck.CheckSeries).
func TestGoSMTPPatchSeries(t *testing.T) {
	forkcheck.CheckSeries(t, goSMTPFork)
}

// TestGoSMTPForkVetAndTests runs go vet and the fork's own tests (patch
// 0001's TestDataReaderBulk among them).
func TestGoSMTPForkVetAndTests(t *testing.T) {
	forkcheck.VetAndTest(t, goSMTPFork, goSMTPFork.Module(t))
}
