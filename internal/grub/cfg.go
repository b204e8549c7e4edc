package grub

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
)

// Names of the boot-state variables in the environment blocks.
const (
	VarCommitted = "twinroot_committed" // a or b: the slot booted when no trial is due
	VarTrial     = "twinroot_trial"     // "", a or b: the slot on trial
	VarTries     = "twinroot_tries"     // trial boots left: 0 to 3
	VarSlotA     = "twinroot_slot_a"    // state of slot a: ok, writing, bad or empty
	VarSlotB     = "twinroot_slot_b"    // state of slot b
)

// MaxTries is the largest trial-boot count grub.cfg counts down (GRUB's
// script has no arithmetic, so every value is spelled out).
const MaxTries = 3

// CfgOptions are the install-time choices baked into grub.cfg.
type CfgOptions struct {
	// KernelArgs are appended to every kernel command line.
	KernelArgs string
	// PanicSeconds is the kernel's panic= value: a panicking trial kernel
	// reboots after this many seconds and GRUB falls back. Default 5.
	PanicSeconds int
}

// Config returns the static grub.cfg. It is written once at install and
// never rewritten: all mutable boot state is in the environment blocks.
func Config(o CfgOptions) ([]byte, error) {
	if o.PanicSeconds == 0 {
		o.PanicSeconds = 5
	}
	if strings.ContainsAny(o.KernelArgs, "\n\"'$;{}") {
		return nil, fmt.Errorf("kernel arguments %q contain characters grub.cfg cannot carry", o.KernelArgs)
	}
	var b bytes.Buffer
	if err := cfgTemplate.Execute(&b, o); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var cfgTemplate = template.Must(template.New("grub.cfg").Parse(`# twinroot grub.cfg: written once at install, never rewritten.
# The boot state is in two environment copies under $prefix/twinroot; see
# the grub package of twinroot for the write order this script relies on.
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
set tr_dir=$prefix/twinroot
regexp --set=1:tr_disk '^([^,]+),' "$root"

# Copy 1 unless lock.1 says it is being written; an invalid copy gives way
# to the other one.
set twinroot_editing=1
load_env --file $tr_dir/lock.1 twinroot_editing
if [ "$twinroot_editing" = 0 ]; then set tr_env=1; set tr_alt=2; else set tr_env=2; set tr_alt=1; fi
set twinroot_committed=
set twinroot_trial=
set twinroot_tries=0
set twinroot_slot_a=
set twinroot_slot_b=
if load_env --file $tr_dir/env.$tr_env twinroot_committed twinroot_trial twinroot_tries twinroot_slot_a twinroot_slot_b; then
  echo "twinroot: boot state from copy $tr_env"
else
  if [ "$tr_env" = 1 ]; then set tr_env=2; set tr_alt=1; else set tr_env=1; set tr_alt=2; fi
  load_env --file $tr_dir/env.$tr_env twinroot_committed twinroot_trial twinroot_tries twinroot_slot_a twinroot_slot_b
fi
if [ "$twinroot_committed" != b ]; then set twinroot_committed=a; fi

# Both copies, the one not read first, each as lock=1, env, lock=0.
function tr_save {
  set twinroot_editing=1
  save_env --file $tr_dir/lock.$1 twinroot_editing
  save_env --file $tr_dir/env.$1 twinroot_committed twinroot_trial twinroot_tries twinroot_slot_a twinroot_slot_b
  set twinroot_editing=0
  save_env --file $tr_dir/lock.$1 twinroot_editing
}

function tr_boot {
  set tr_part=3
  if [ "$1" = b ]; then set tr_part=4; fi
  echo "twinroot: booting slot $1 ($2)"
  linux ($tr_disk,gpt$tr_part)/boot/vmlinuz twinroot.slot=$1 $3 root=PARTLABEL=twinroot-$1 ro console=tty0 console=ttyS0,115200 panic={{.PanicSeconds}}{{if .KernelArgs}} {{.KernelArgs}}{{end}}
  initrd ($tr_disk,gpt$tr_part)/boot/initrd.img
  boot
}

# A trial slot that is ok and has tries left is booted once more, the count
# saved before the kernel starts, so that a panic or hang uses it up. Its
# kernel gets twinroot.trial=1: the system arms the watchdog early.
set tr_slot=$twinroot_committed
set tr_trial_state=$twinroot_slot_a
if [ "$twinroot_trial" = b ]; then set tr_trial_state=$twinroot_slot_b; fi
if [ "$twinroot_trial" = a -o "$twinroot_trial" = b ]; then
  if [ "$twinroot_trial" != "$twinroot_committed" -a "$tr_trial_state" = ok ]; then
    if [ "$twinroot_tries" = 3 ]; then
      set twinroot_tries=2
      set tr_slot=$twinroot_trial
    elif [ "$twinroot_tries" = 2 ]; then
      set twinroot_tries=1
      set tr_slot=$twinroot_trial
    elif [ "$twinroot_tries" = 1 ]; then
      set twinroot_tries=0
      set tr_slot=$twinroot_trial
    fi
  fi
fi
if [ "$tr_slot" != "$twinroot_committed" ]; then
  tr_save $tr_alt
  tr_save $tr_env
  tr_boot $tr_slot "trial, $twinroot_tries tries left" twinroot.trial=1
  echo "twinroot: slot $tr_slot did not load, falling back"
fi
tr_boot $twinroot_committed committed
echo "twinroot: committed slot $twinroot_committed did not load"
set tr_other=a
if [ "$twinroot_committed" = a ]; then set tr_other=b; fi
tr_boot $tr_other "last resort"
echo "twinroot: no slot could be loaded; rebooting in 10 s"
sleep 10
reboot
`))
