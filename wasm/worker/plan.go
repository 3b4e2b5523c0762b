package main

import "crypto/sha256"

// digestOf is the sha256 of a manifest's bytes: the stage messages carry it,
// and a stage refuses a tensor computed with another manifest.
func digestOf(raw []byte) [32]byte { return sha256.Sum256(raw) }
