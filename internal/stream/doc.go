// Package stream copies an image into a region of a disk while hashing it,
// and verifies a region against a hash by reading it back from the disk
// rather than from the page cache.
package stream
