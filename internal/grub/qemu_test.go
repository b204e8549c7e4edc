package grub

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// instBootCfg proves, from real GRUB, that the prefix found the ESP, that
// load_env reads the environment block and that save_env rewrites it in
// place on our FAT32.
const instBootCfg = `serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
echo twinroot-grub-ok
echo "twinroot-prefix=${prefix} root=${root}"
load_env
echo "twinroot-probe=${twinroot_probe}"
set twinroot_saved="${grub_platform}"
save_env twinroot_saved
echo twinroot-saved
halt
`

// instQEMU boots the disk and returns the serial console output once QEMU
// exits (GRUB's halt powers the machine off).
func instQEMU(t *testing.T, disk string, extra ...string) string {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatalf("qemu-system-x86_64 is not installed: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	args := append([]string{
		"-accel", "tcg", "-m", "256", "-nographic", "-no-reboot",
		"-drive", "file=" + disk + ",format=raw,if=virtio",
	}, extra...)
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Stdin = nil
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	t.Logf("boot took %v", time.Since(start).Round(10*time.Millisecond))
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("QEMU did not power off within the timeout; serial console:\n%s", out.String())
	}
	if err != nil {
		t.Fatalf("qemu-system-x86_64: %v\n%s", err, out.String())
	}
	return out.String()
}

func TestBootQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU (about a minute under TCG); skipped with -short")
	}
	img := instImages(t)
	for _, fw := range []struct {
		name     string
		platform string // GRUB's $grub_platform
		args     func(t *testing.T) []string
	}{
		{"seabios", "pc", func(*testing.T) []string { return nil }},
		{"ovmf", "efi", func(t *testing.T) []string {
			vars := filepath.Join(t.TempDir(), "OVMF_VARS.fd")
			instCopy(t, "/usr/share/OVMF/OVMF_VARS_4M.fd", vars)
			return []string{
				"-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
				"-drive", "if=pflash,format=raw,file=" + vars,
			}
		}},
	} {
		t.Run(fw.name, func(t *testing.T) {
			t.Parallel()
			l := instDisk(t)
			instInstallBIOS(t, l, img)
			instMakeESP(t, l, []File{
				{Path: EFIBootFile, Data: img.EFI},
				{Path: PrefixDir + "/grub.cfg", Data: []byte(instBootCfg)},
				{Path: PrefixDir + "/grubenv", Data: instEnvBlock("twinroot_probe=seeded")},
			})

			out := instQEMU(t, l.path, fw.args(t)...)
			for _, want := range []string{"twinroot-grub-ok", "twinroot-probe=seeded", "twinroot-saved"} {
				if !strings.Contains(out, want) {
					t.Errorf("serial console lacks %q:\n%s", want, out)
				}
			}
			if i := strings.Index(out, "twinroot-prefix="); i >= 0 {
				t.Logf("%s", strings.TrimSpace(strings.SplitN(out[i:], "\n", 2)[0]))
			}
			if strings.Contains(out, "error:") {
				t.Errorf("GRUB reported an error:\n%s", out)
			}

			disk, err := os.Open(l.path)
			if err != nil {
				t.Fatal(err)
			}
			defer disk.Close()
			env, err := ReadFile(disk, l.espStart, l.espSize, PrefixDir+"/grubenv")
			if err != nil {
				t.Fatal(err)
			}
			if len(env) != 1024 || !bytes.Contains(env, []byte("\ntwinroot_saved="+fw.platform+"\n")) {
				t.Errorf("grubenv after save_env (%d bytes):\n%s", len(env), env)
			}
			instFsck(t, l)
		})
	}
}

func instCopy(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
