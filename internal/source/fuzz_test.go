package source

import (
	"fmt"
	"testing"

	"github.com/twinroot/twinroot/internal/testfuzz"
)

// FuzzContentRange: the header comes from whatever server the URL names.
func FuzzContentRange(f *testing.F) {
	for i, s := range []string{"bytes 0-99/100", "bytes 5-5/*", "bytes -1-3/4", "bytes 9-1/10", "bytes 1-2", "items 0-1/2"} {
		testfuzz.Add(f, fmt.Sprintf("range-%d", i), s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		start, end, size, err := parseContentRange(v)
		if err == nil && (start < 0 || end < start || (size != -1 && size <= end)) {
			t.Fatalf("parseContentRange(%q) = %d, %d, %d: want 0 <= start <= end < size, or size -1", v, start, end, size)
		}
	})
}
