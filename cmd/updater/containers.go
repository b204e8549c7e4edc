package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/containers"
)

func newContainersCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "containers",
		Short: "The services bundled in the running image: their state, and their env files",
		Long: `The running slot image carries its services as Podman Quadlet units and
a read-only image store (see updater build --containers). systemd starts
them at boot; these commands show them and render their env files.

` + cli.ExitCodesHelp,
	}
	c.AddCommand(newContainersStatusCmd(), newContainersEnvCmd())
	return c
}

type containersStatusOptions struct {
	cfg deviceConfig
	out cli.Output
}

func newContainersStatusCmd() *cobra.Command {
	var o containersStatusOptions
	c := &cobra.Command{
		Use:   "status",
		Short: "Show each bundled service: unit state, image, health, restarts, and whether the health gate requires it",
		Long: `status lists the services of the running image with their systemd unit
state, the image ID each runs, podman's last health check result, how
often systemd restarted it since boot, and whether health.containers of
device.yaml names it (a required service must be healthy before a trial
boot is committed).

` + cli.ExitCodesHelp,
		Example: `  updater containers status
  updater containers status -o json`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runContainersStatus(c, o, c.OutOrStdout()) },
	}
	o.cfg.AddFlags(c)
	o.out.AddFlags(c.Flags())
	return c
}

func runContainersStatus(c *cobra.Command, o containersStatusOptions, w io.Writer) error {
	if err := o.out.Validate(); err != nil {
		return err
	}
	b, err := containers.ReadBundle("/")
	if err != nil {
		return err
	}
	var required []string
	if cfg, err := config.Load(o.cfg.path); err == nil {
		required = cfg.Health.Containers
	}
	st, err := containers.Inspector{}.Status(c.Context(), b, required)
	if err != nil {
		return err
	}
	if o.out.JSON() {
		if st == nil {
			st = []containers.Status{}
		}
		return cli.WriteJSON(w, st)
	}
	if len(st) == 0 {
		fmt.Fprintln(w, "this image bundles no services")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tSTATE\tHEALTH\tRESTARTS\tREQUIRED\tIMAGE")
	for _, s := range st {
		req := "no"
		if s.Required {
			req = "yes"
		}
		id := s.ImageID
		if len(id) > 19 {
			id = id[:19]
		}
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%d\t%s\t%s (%s)\n", s.Service, s.State, s.SubState, s.Health, s.Restarts, req, s.Image, id)
	}
	return tw.Flush()
}

func newContainersEnvCmd() *cobra.Command {
	var r containers.Renderer
	c := &cobra.Command{
		Use:   "env SERVICE",
		Short: "Render a service's env file (run by its unit before every start)",
		Long: `env writes /run/twinroot/containers/SERVICE.env (mode 0600) from the
service's env template in the image, the device's values
(/data/twinroot/containers/values.env) and its secrets
(/data/twinroot/containers/secrets/, each made once, 32 random bytes in
hex). Each bundled service's unit runs it as ExecStartPre, so the file is
made anew at every start. A value the template needs and the device lacks
is an error that names it.

` + cli.ExitCodesHelp,
		Example: `  updater containers env web`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			path, err := r.Render(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "rendered %s\n", path)
			return nil
		},
	}
	r = containers.SystemRenderer()
	f := c.Flags()
	f.StringVar(&r.Data, "data", r.Data, "the device's values.env and secrets/")
	f.StringVar(&r.Runtime, "runtime", r.Runtime, "where the rendered file goes")
	f.StringVar(&r.Templates, "templates", r.Templates, "the image's env templates")
	return c
}
