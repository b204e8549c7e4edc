package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/testfuzz"
)

// fuzzLimit is the slot size ReadSlot is given: images are read up to it.
const fuzzLimit = 1 << 20

// FuzzReadSlot feeds damaged slot images to ReadSlot, which reads whatever
// a slot holds: the running one, or the other after a write was cut off or
// the disk went bad. It must return an error rather than panic, and what it
// reads must be within the slot and as documented.
func FuzzReadSlot(f *testing.F) {
	// The seeds are Build's images, written to testdata when mksquashfs is
	// here; without it the committed ones are used.
	if _, err := exec.LookPath("mksquashfs"); err == nil {
		root := filepath.Join(f.TempDir(), "root")
		for name, data := range map[string]string{"boot/vmlinuz": "kernel", "boot/initrd.img": "initrd"} {
			p := filepath.Join(root, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				f.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				f.Fatal(err)
			}
		}
		var trust []string
		for i := byte(1); i <= 2; i++ {
			k, err := keys.FromSeed(bytes.Repeat([]byte{i}, 32))
			if err != nil {
				f.Fatal(err)
			}
			pub, _ := k.Public().MarshalText()
			path := filepath.Join(f.TempDir(), "release"+string('0'+i)+".pub")
			if err := os.WriteFile(path, pub, 0o644); err != nil {
				f.Fatal(err)
			}
			trust = append(trust, path)
		}
		for _, comp := range []string{"xz", "gzip", "none"} {
			out := filepath.Join(f.TempDir(), "slot.img")
			if _, err := Build(context.Background(), BuildOptions{Rootfs: root, Trust: trust, Version: "1.4.0", Serial: 14, Compression: comp, Out: out}); err != nil {
				f.Fatal(err)
			}
			img, err := os.ReadFile(out)
			if err != nil {
				f.Fatal(err)
			}
			testfuzz.Add(f, "build-"+comp, img)
			if comp == "none" {
				// bytes_used past the end of any disk: the size overflowed.
				huge := bytes.Clone(img)
				binary.LittleEndian.PutUint64(huge[40:], 1<<63-1)
				testfuzz.Add(f, "bytes-used-max", huge)
				testfuzz.Add(f, "truncated", img[:len(img)/2])
			}
		}
	}
	testfuzz.Add(f, "magic-only", []byte("hsqs"))
	path := filepath.Join(f.TempDir(), "slot.img")
	f.Fuzz(func(t *testing.T, img []byte) {
		testfuzz.WriteFile(t, path, img, 0o644)
		info, err := Probe(bytes.NewReader(img), 0)
		if err == nil && (info.Size < 0 || info.Size%4096 != 0 || info.Compression == "") {
			t.Fatalf("Probe = %+v", info)
		}
		r, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		s, err := ReadSlot(r, 0, fuzzLimit)
		if err != nil {
			return
		}
		if s.Size < 0 || s.Size > fuzzLimit || s.Size > info.Size {
			t.Fatalf("ReadSlot size %d, superblock %d, limit %d", s.Size, info.Size, fuzzLimit)
		}
		if s.Version != strings.TrimSpace(s.Version) {
			t.Fatalf("version %q is not trimmed", s.Version)
		}
		if !slices.IsSorted(s.Keys) || !slices.Equal(s.Keys, slices.Sorted(slices.Values(s.Trusted.IDs()))) {
			t.Fatalf("keys %v, ring %v", s.Keys, s.Trusted.IDs())
		}
	})
}
