package witness

// SetBeforeCommit installs a hook that runs after a request was verified
// and cosigned, just before the compare-and-swap, so tests can line up
// racing requests.
func SetBeforeCommit(w *Witness, f func()) { w.beforeCommit = f }
