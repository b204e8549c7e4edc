// Package refusal marks the errors of checks that refuse an operation
// before it changes what it guards: a bad signature, an image that does
// not fit, a disk that holds data, a field of device.yaml. The mark is made
// where the check is (as restic's errors.Fatal), so the command layer asks
// an error whether it is a refusal and keeps no list of other packages'
// sentinels; every twinroot command exits 3 for one.
//
// It also holds the sentinels that several packages share because they
// mean one thing wherever they are found: ErrDoesNotFit (an image larger
// than its slot) and ErrMismatch (bytes that differ from what was signed,
// whether a manifest, an index, a frame of the object or the image on the
// disk).
package refusal
