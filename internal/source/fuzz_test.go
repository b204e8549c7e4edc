package source

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/internal/testfuzz"
)

// FuzzParseURL: store URLs come from device.yaml and the command line.
func FuzzParseURL(f *testing.F) {
	for i, s := range []string{"s3://bucket/prefix", "https://host:8443/a/b", "file:///media/usb", "s3://b/../x", "http://h/%2e%2e/x", ""} {
		testfuzz.Add(f, fmt.Sprintf("url-%d", i), s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		loc, err := parseURL(raw)
		if err != nil {
			return
		}
		if loc.scheme != "file" {
			for _, seg := range strings.Split(loc.prefix, "/") {
				if seg == ".." {
					t.Fatalf("parseURL(%q) accepted prefix %q with ..", raw, loc.prefix)
				}
			}
		} else if !strings.HasPrefix(loc.prefix, "/") {
			t.Fatalf("parseURL(%q) accepted a relative file path %q", raw, loc.prefix)
		}
	})
}

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

// FuzzCheckKey: keys are built from manifest fields, which come from the
// store; a key must never reach outside the store's prefix.
func FuzzCheckKey(f *testing.F) {
	for i, s := range []string{"stable/1.0.0/slot.img.zst", "../x", "a/./b", "/a", "a//b", "a\\..\\b"} {
		testfuzz.Add(f, fmt.Sprintf("key-%d", i), s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if checkKey(key) != nil {
			return
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("checkKey accepted %q", key)
			}
		}
	})
}
