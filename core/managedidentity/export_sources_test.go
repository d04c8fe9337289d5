package managedidentity

import "testing"

// SetHimdsPath makes detection look for the Azure Arc agent's binary at path, for one test.
func SetHimdsPath(t testing.TB, path string) {
	old := himdsPath
	himdsPath = func(func(string) string) string { return path }
	t.Cleanup(func() { himdsPath = old })
}
