package batch

import (
	"os"
	"testing"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// prefix starts the name of every namespace this package's tests make
// (see netnstest.UniqueName).
const prefix = "egfw-batch-"

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		netnstest.RemoveStale(prefix)
	}
	os.Exit(m.Run())
}
