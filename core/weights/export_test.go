package weights

// SetHashChunk sets the read and hash chunk size for a test, so that small
// shards cross chunk boundaries; the returned func restores it.
func SetHashChunk(n int) (restore func()) {
	old := hashChunk
	hashChunk = n
	return func() { hashChunk = old }
}
