// Package storeurl owns the names of a release store and of the objects in
// it: the store URL that device.yaml and the command line give, and the
// keys under it. It imports no store client, so that the configuration is
// checked by the same rules the stores open with.
//
// A store is s3://bucket/prefix, https://host/prefix (or http://), or
// file:///path. No credentials, query or fragment, and no "." or ".."
// segment in the path. A key is a slash-separated path relative to the
// store: no empty, "." or ".." segment, no backslash or NUL, so a key
// built from a manifest's fields never reaches outside the store's prefix.
package storeurl

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
)

// Want says what a store URL may be, for messages.
const Want = "want s3://bucket/prefix, https://host/prefix, http://host/prefix or file:///path"

// Location is a parsed store URL.
type Location struct {
	Raw    string
	Scheme string // s3, https, http, file
	Host   string // bucket for s3, host[:port] for http(s)
	Prefix string // without leading or trailing slash; the directory for file
}

// Parse parses a store URL. Its errors never repeat a URL that may hold a
// password.
func Parse(raw string) (Location, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return Location{}, fmt.Errorf("store URL %s is not a URL: %s", shown(raw), Want)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Location{}, errors.New("store URL: credentials, query and fragment are not allowed (put credentials in the config)")
	}
	loc := Location{Raw: raw, Scheme: u.Scheme, Host: u.Host}
	switch loc.Scheme {
	case "s3":
		if u.Host == "" {
			return Location{}, fmt.Errorf("store URL %s has no bucket: want s3://bucket/prefix", shown(raw))
		}
		loc.Prefix = strings.Trim(u.Path, "/")
	case "https", "http":
		if u.Host == "" {
			return Location{}, fmt.Errorf("store URL %s has no host: want %s://host/prefix", shown(raw), loc.Scheme)
		}
		loc.Prefix = strings.Trim(u.Path, "/")
	case "file":
		if (u.Host != "" && u.Host != "localhost") || !strings.HasPrefix(u.Path, "/") {
			return Location{}, fmt.Errorf("store URL %s does not name an absolute local path: want file:///path", shown(raw))
		}
		loc.Prefix = path.Clean(u.Path)
	default:
		return Location{}, fmt.Errorf("store URL %s: unknown scheme, %s", shown(raw), Want)
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return Location{}, fmt.Errorf("store URL %s: . and .. are not allowed in the path", shown(raw))
		}
	}
	return loc, nil
}

// notShown stands in a message for a URL that may hold user:password@.
const notShown = "(not shown: it holds an @)"

// shown is raw for a message, unless it may hold user:password@.
func shown(raw string) string {
	if strings.Contains(raw, "@") {
		return notShown
	}
	return fmt.Sprintf("%q", raw)
}

// CheckKey refuses keys that could leave the store's prefix.
func CheckKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	if strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") || strings.Contains(key, "//") {
		return fmt.Errorf("key %q: no leading, trailing or double slash allowed", key)
	}
	if strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("key %q: backslash and NUL are not allowed", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("key %q: . and .. are not allowed", key)
		}
	}
	return nil
}
