package stream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestCopyHashedAndVerify(t *testing.T) {
	src := bytes.Repeat([]byte("twinroot"), (BufSize*2+12345)/8)
	f, err := os.Create(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var calls int
	sum, err := CopyHashed(context.Background(), f, 4096, bytes.NewReader(src), int64(len(src)), func(done, total int64) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(src)
	if !bytes.Equal(sum, want[:]) || calls != 3 {
		t.Errorf("sum %x (%d progress calls), want %x (3)", sum, calls, want)
	}
	if !Equal(fmt.Sprintf("%x", want), sum) || Equal("00", sum) {
		t.Error("Equal is wrong")
	}
	if err := Verify(f, 4096, int64(len(src)), sum); err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{'X'}, 4096+BufSize+1)
	if err := Verify(f, 4096, int64(len(src)), sum); !errors.Is(err, ErrMismatch) {
		t.Errorf("Verify after a flipped byte = %v, want ErrMismatch", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := CopyHashed(ctx, f, 0, bytes.NewReader(src), int64(len(src)), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("CopyHashed with a cancelled context = %v", err)
	}
}
