//go:build !linux

package source

// renameNoReplace moves tmp to dst unless dst exists.
func renameNoReplace(tmp, dst string) error { return linkNoReplace(tmp, dst) }
