package initramfs

import (
	"bytes"
	"compress/gzip"
	"io"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/twinroot/twinroot/internal/testenv"
)

// TestAddProgram puts mke2fs with its libraries into a tree, as the
// installer ISO does, and reads the archive back: ldd's list of the
// program's libraries is in it, and the bytes are reproducible.
func TestAddProgram(t *testing.T) {
	testenv.Need(t, "mke2fs", "ldd")
	mke2fs, err := exec.LookPath("mke2fs")
	if err != nil {
		t.Fatal(err)
	}
	build := func() []byte {
		tr := NewTree()
		tr.Dir("tmp", 0o1777)
		if err := tr.AddProgram("sbin/mke2fs", mke2fs); err != nil {
			t.Fatal(err)
		}
		tr.Symlink("sbin/mkfs.ext4", "mke2fs")
		b, err := tr.Gzip()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := build(), build()
	if !bytes.Equal(a, b) {
		t.Error("two builds of the same tree differ")
	}
	zr, err := gzip.NewReader(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	sort.Strings(names)
	have := strings.Join(names, " ")
	out, err := exec.Command("ldd", mke2fs).Output()
	if err != nil {
		t.Fatalf("ldd: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		var lib string
		switch {
		case len(f) >= 3 && f[1] == "=>":
			lib = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0]
		default:
			continue
		}
		if !strings.Contains(" "+have+" ", " "+strings.TrimPrefix(lib, "/")+" ") {
			t.Errorf("the archive lacks %s, which mke2fs needs; it holds %s", lib, have)
		}
	}
	for _, want := range []string{"sbin/mke2fs", "sbin/mkfs.ext4", "tmp"} {
		if !strings.Contains(" "+have+" ", " "+want+" ") {
			t.Errorf("the archive lacks %s", want)
		}
	}
}
