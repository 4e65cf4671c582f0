package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ferry-pipelines/ferry/internal/devenv"
)

func devCmd() *cobra.Command {
	var port1, port2 int
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local world for trying ferry: two embedded Kafka clusters, dc1 and dc2",
		Long: `Dev starts two embedded Kafka clusters (franz-go's kfake, which speaks the
real Kafka protocol: kcat and every Kafka client work against it), prints
their addresses and runs until interrupted. The example pipelines in
pipelines/ point at the default ports.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pair, err := devenv.StartPair(port1, port2)
			if err != nil {
				return exit(1, err)
			}
			defer pair.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "dc1 Kafka: %s\ndc2 Kafka: %s\nrunning; press Ctrl-C to stop\n", pair.DC1.Addr(), pair.DC2.Addr())
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			fmt.Fprintln(cmd.OutOrStdout(), "stopping")
			return nil
		},
	}
	cmd.Flags().IntVar(&port1, "dc1-port", devenv.DC1Port, "`PORT` of dc1's Kafka on 127.0.0.1 (0: any free port)")
	cmd.Flags().IntVar(&port2, "dc2-port", devenv.DC2Port, "`PORT` of dc2's Kafka on 127.0.0.1 (0: any free port)")
	return cmd
}
