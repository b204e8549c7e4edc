package storeurl

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/internal/testfuzz"
)

func TestParse(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		{"s3://bucket/a/b/", "s3 bucket a/b"},
		{"S3://bucket", "s3 bucket "},
		{"https://host:8443/a", "https host:8443 a"},
		{"http://host", "http host "},
		{"file:///media/usb/", "file  /media/usb"},
		{"file://localhost/media/usb", "file localhost /media/usb"},
	} {
		loc, err := Parse(c.raw)
		if got := fmt.Sprintf("%s %s %s", loc.Scheme, loc.Host, loc.Prefix); err != nil || got != c.want || loc.Raw != c.raw {
			t.Errorf("Parse(%q) = %q (raw %q), %v; want %q", c.raw, got, loc.Raw, err, c.want)
		}
	}
	for _, c := range []struct{ raw, want string }{
		{"ftp://h/p", `store URL "ftp://h/p": unknown scheme, want s3://`},
		{"no-scheme", `store URL "no-scheme": unknown scheme`},
		{"s3:bucket/x", `store URL "s3:bucket/x" is not a URL`},
		{"s3:///p", `store URL "s3:///p" has no bucket`},
		{"https:///p", `store URL "https:///p" has no host: want https://host/prefix`},
		{"file://usb/x", `store URL "file://usb/x" does not name an absolute local path`},
		{"file://relative", "does not name an absolute local path"},
		{"s3://b/a/../c", `store URL "s3://b/a/../c": . and .. are not allowed in the path`},
		{"http://h/%2e%2e/x", ". and .. are not allowed"},
		{"file:///media/./usb", ". and .. are not allowed"},
		{"s3://b/x?versionId=1", "credentials, query and fragment are not allowed"},
		{"https://u:hunter2@h/p", "store URL: credentials, query and fragment are not allowed"},
		{"https://u:hunter2@h/%zz", "store URL (not shown: it holds an @) is not a URL"},
		{"u:hunter2@h/p", "store URL (not shown: it holds an @) is not a URL"},
		{"hunter2@h/p", "store URL (not shown: it holds an @): unknown scheme"},
	} {
		_, err := Parse(c.raw)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", c.raw, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Parse(%q) = %v: it shows the password", c.raw, err)
		}
	}
}

func TestCheckKey(t *testing.T) {
	if err := CheckKey("stable/1.0.0/slot.img.zst"); err != nil {
		t.Errorf("CheckKey of a release object: %v", err)
	}
	for _, key := range []string{"", "../x", "a/./b", "/a", "a/", "a//b", `a\..\b`, "a\x00b"} {
		if CheckKey(key) == nil {
			t.Errorf("CheckKey(%q) accepted it", key)
		}
	}
}

// FuzzParseURL: store URLs come from device.yaml and the command line.
func FuzzParseURL(f *testing.F) {
	for i, s := range []string{"s3://bucket/prefix", "https://host:8443/a/b", "file:///media/usb", "s3://b/../x", "http://h/%2e%2e/x", ""} {
		testfuzz.Add(f, fmt.Sprintf("url-%d", i), s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		loc, err := Parse(raw)
		if err != nil {
			if strings.Contains(raw, "@") && strings.Contains(strings.ReplaceAll(err.Error(), notShown, ""), raw) {
				t.Fatalf("Parse(%q) = %v: it repeats a URL that may hold a password", raw, err)
			}
			return
		}
		if loc.Host == "" && loc.Scheme != "file" {
			t.Fatalf("Parse(%q) accepted no bucket or host", raw)
		}
		for _, seg := range strings.Split(loc.Prefix, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("Parse(%q) accepted prefix %q with %s", raw, loc.Prefix, seg)
			}
		}
		if loc.Scheme == "file" && !strings.HasPrefix(loc.Prefix, "/") {
			t.Fatalf("Parse(%q) accepted a relative file path %q", raw, loc.Prefix)
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
		if CheckKey(key) != nil {
			return
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("CheckKey accepted %q", key)
			}
		}
	})
}
