package main

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/twinroot/twinroot/image/examples/debian"
)

//go:embed dpkg.sh
var dpkgScript []byte

//go:embed config.sh
var configScript []byte

// deb is one Debian package file, pinned by its SHA-256.
type deb struct {
	Archive string // the archive's URL, e.g. http://deb.debian.org/debian
	Pool    string // the file's path in the archive
	SHA256  string
}

const (
	mainArchive     = debian.Mirror
	securityArchive = "http://deb.debian.org/debian-security"
)

func debOf(archive, pool, sum string) deb { return deb{archive, pool, sum} }

// The packages of the roots. The 3.5.9 files are the ones debootstrap
// installed in the base (trixie); the others are trixie-security updates
// (pool/updates) and packages of trixie added to the root.
var (
	openssl359 = []deb{
		debOf(mainArchive, "pool/main/o/openssl/libssl3t64_3.5.9-1~deb13u1_amd64.deb", "ffefb9af363e0e4592251b2533eb06453c8e470f7772e40263c4b2129251a6d5"),
		debOf(mainArchive, "pool/main/o/openssl/openssl_3.5.9-1~deb13u1_amd64.deb", "faf53a993766c81f94f35b6a31202f0dcd936e1529791790a393aa59f41c0993"),
		debOf(mainArchive, "pool/main/o/openssl/openssl-provider-legacy_3.5.9-1~deb13u1_amd64.deb", "67c70904c8d494b4631e136a6bdb692cbb44515757d63c55e7bd1d2016f9f09f"),
	}
	openssl3510 = []deb{
		debOf(securityArchive, "pool/updates/main/o/openssl/libssl3t64_3.5.10-1~deb13u1_amd64.deb", "0637cf06d62cb22ef7b285b2e9b43a2ad6c27efcd6cc477e4b17115ded573031"),
		debOf(securityArchive, "pool/updates/main/o/openssl/openssl_3.5.10-1~deb13u1_amd64.deb", "e525d011b6f9911b831260b9204e421c0fc1c3bf007b0070d4928ee7f7f4b890"),
		debOf(securityArchive, "pool/updates/main/o/openssl/openssl-provider-legacy_3.5.10-1~deb13u1_amd64.deb", "15c713d20c7a6793d71cd1fc701410d4dd263ca4dd993361387dce1d48bb0bda"),
	}
	mixedDebs = []deb{
		debOf(securityArchive, "pool/updates/main/k/krb5/libgssapi-krb5-2_1.21.3-5+deb13u2_amd64.deb", "92e4d11b61d702ae5bcb4293c9af69625ea1cd62aac0d87db9b0344217d749be"),
		debOf(securityArchive, "pool/updates/main/k/krb5/libk5crypto3_1.21.3-5+deb13u2_amd64.deb", "782e113c8186a413b422ff2bf989874f9a5496002fd6f0ca05bd136eaca4b8b3"),
		debOf(securityArchive, "pool/updates/main/k/krb5/libkrb5-3_1.21.3-5+deb13u2_amd64.deb", "cf58784dc2160fbab7968edbfa8a789c7149b5c81ae2e8300286f98763c4d92d"),
		debOf(securityArchive, "pool/updates/main/k/krb5/libkrb5support0_1.21.3-5+deb13u2_amd64.deb", "b4e2515f3d5ebda994498cee895d7ba3942ac9182570087acbd1638df2b8acf4"),
		debOf(securityArchive, "pool/updates/main/libz/libzstd/libzstd1_1.5.7+dfsg-1+deb13u1_amd64.deb", "23a6f8a774d5dceda5f759b4ecdcdd652dfbefbf8271912e6a7ab0ee3250dc75"),
		debOf(securityArchive, "pool/updates/main/s/shadow/passwd_4.17.4-2+deb13u1_amd64.deb", "e7f364ab275542ba9cfdf0c6bec9276fbac3ef6fe27d3a65674bd29ba3d32096"),
		debOf(securityArchive, "pool/updates/main/s/shadow/login.defs_4.17.4-2+deb13u1_all.deb", "5573474d7bdfab60b27abdb6cbd5c5d4bf898e86d17fd8956eed6a4ebf1a4246"),
		debOf(securityArchive, "pool/updates/main/s/shadow/libsubid5_4.17.4-2+deb13u1_amd64.deb", "b9615f5f9c00985374767125eecb9afca7b80eb4e6588300641ec3c182c49bca"),
		debOf(mainArchive, "pool/main/l/less/less_668-1_amd64.deb", "ba3c216e68298a2d375d4e386baa935e245f0f23ddb74502b12582f8de061d4f"),
		debOf(mainArchive, "pool/main/j/jq/jq_1.7.1-6+deb13u4_amd64.deb", "7350392f700e20e46b7ae174a57f54e4ea106dd559753646d629b4e618bf2bff"),
		debOf(mainArchive, "pool/main/j/jq/libjq1_1.7.1-6+deb13u4_amd64.deb", "70bb2cbd66d5ada4349067ae9f61d0560b3b359d4203f2c051ca5773153ae0ba"),
		debOf(mainArchive, "pool/main/libo/libonig/libonig5_6.9.9-1+b1_amd64.deb", "3abee130696244050500bcc7870e3b4cb82ddd87149ece3fd55010c3d4e1d18c"),
	}
)

// rootSpec is a root made from another one (or from the Debian base) by
// installing packages with dpkg and, optionally, config.sh.
type rootSpec struct {
	Name   string
	From   *rootSpec // nil: the cached Debian base
	Debs   []deb
	Config bool
}

// v1 is the running system of both pairs: the base with its openssl
// installed again at the same version. base.sh removed directories that
// dpkg lists, and the first dpkg run after it rewrites every package's
// file list; v1 has had that run, so a pair's difference is its own.
var (
	v1      = &rootSpec{Name: "v1", Debs: openssl359}
	openssl = &rootSpec{Name: "openssl", From: v1, Debs: openssl3510}
	mixed   = &rootSpec{Name: "mixed", From: v1, Debs: mixedDebs, Config: true}
)

// hash names a root by its inputs: the base, the packages and the scripts.
func (s *rootSpec) hash(base string) string {
	h := sha256.New()
	if s.From == nil {
		fmt.Fprintf(h, "base %s\n", filepath.Base(base))
	} else {
		fmt.Fprintf(h, "from %s\n", s.From.hash(base))
	}
	for _, d := range s.Debs {
		fmt.Fprintf(h, "deb %s\n", d.SHA256)
	}
	fmt.Fprintf(h, "dpkg.sh %x\n", sha256.Sum256(dpkgScript))
	if s.Config {
		fmt.Fprintf(h, "config.sh %x\n", sha256.Sum256(configScript))
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// roots makes the roots of the bench under cache, each once.
type roots struct {
	cache string // build/delta
	base  string // the Debian base root
	logf  func(format string, args ...any)
}

// dir returns the cached root of s, building it (and the roots it comes
// from) first when absent. A root is built in a temporary directory beside
// its cache entry and renamed at the end, so a failed build leaves nothing
// under a cached name.
func (r *roots) dir(ctx context.Context, s *rootSpec) (string, error) {
	dir := filepath.Join(r.cache, "roots", s.Name+"-"+s.hash(r.base))
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return dir, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("build root %s: dpkg in a chroot needs root", dir)
	}
	from := r.base
	if s.From != nil {
		var err error
		if from, err = r.dir(ctx, s.From); err != nil {
			return "", err
		}
	}
	start := time.Now()
	r.logf("building root %s from %s", dir, from)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	// A real copy: dpkg and config.sh change files in place.
	if out, err := exec.CommandContext(ctx, "cp", "-a", from, root).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copy %s: %v: %s", from, err, strings.TrimSpace(string(out)))
	}
	debs := filepath.Join(root, "tmp", "twinroot-debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return "", err
	}
	for _, d := range s.Debs {
		f, err := r.fetch(ctx, d)
		if err != nil {
			return "", err
		}
		if err := copyFile(f, filepath.Join(debs, path.Base(d.Pool))); err != nil {
			return "", err
		}
	}
	script := filepath.Join(tmp, "dpkg.sh")
	if err := os.WriteFile(script, dpkgScript, 0o755); err != nil {
		return "", err
	}
	if out, err := command(ctx, "unshare", "--mount", "--propagation", "private", "sh", script, root); err != nil {
		return "", fmt.Errorf("dpkg.sh %s: %v\n%s", s.Name, err, tail(out, 20))
	}
	if s.Config {
		script := filepath.Join(tmp, "config.sh")
		if err := os.WriteFile(script, configScript, 0o755); err != nil {
			return "", err
		}
		if out, err := command(ctx, "sh", script, root); err != nil {
			return "", fmt.Errorf("config.sh: %v\n%s", err, tail(out, 20))
		}
	}
	if err := os.Rename(root, dir); err != nil {
		return "", err
	}
	r.logf("root %s built in %v", s.Name, time.Since(start).Round(time.Second))
	return dir, nil
}

// fetch returns the cached file of d, downloading it first when absent.
func (r *roots) fetch(ctx context.Context, d deb) (string, error) {
	dir := filepath.Join(r.cache, "debs")
	file := filepath.Join(dir, path.Base(d.Pool))
	if sum, err := fileSum(file); err == nil && sum == d.SHA256 {
		return file, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	url := d.Archive + "/" + d.Pool
	r.logf("downloading %s", url)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("download %s: %s (a superseded version leaves the archive: put the file with SHA-256 %s in %s)", url, resp.Status, d.SHA256, dir)
	}
	tmp, err := os.CreateTemp(dir, ".deb-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("download %s: %w", url, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != d.SHA256 {
		return "", fmt.Errorf("download %s: SHA-256 %s, want %s", url, sum, d.SHA256)
	}
	return file, os.Rename(tmp.Name(), file)
}

func fileSum(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// command runs a command and returns its combined output.
func command(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
