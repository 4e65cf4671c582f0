package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/offsets"
)

// translateFlags are `ferry offsets translate`'s flags.
type translateFlags struct {
	group, from, to string
	topics          []string
	apply           bool
	planFile        string
	timeout         time.Duration
}

func offsetsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "offsets",
		Short: "Move consumer groups between datacenters: exact offset translation",
	}
	var f translateFlags
	translate := &cobra.Command{
		Use:   "translate --group G --from DC --to DC [--topic T] [--apply] [DIR | --plan FILE]",
		Short: "Translate a group's committed offsets to another datacenter; --apply commits them",
		Long: `Translate reads group G's committed offsets in datacenter --from and computes,
per partition of every topic mirrored from --from to --to (or of --topic
only), the offset in --to from which the group reads every record it has not
consumed yet, re-reading as few as possible. It prints, per partition, the
source offset, the target offset and how many records will be read again.
A partition without a committed offset is not translated: a consumer there
starts as its auto.offset.reset says, as it would in --from.

With --apply it commits the target offsets to G in --to, refusing when G has
active members there. Datacenter addresses come from the definitions in DIR
(default: the working directory) or the plan --plan FILE.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return translateGroup(cmd.Context(), cmd.OutOrStdout(), args, f)
		},
	}
	fl := translate.Flags()
	fl.StringVar(&f.group, "group", "", "the consumer `GROUP` to translate")
	fl.StringVar(&f.from, "from", "", "the datacenter `DC` the group consumed in")
	fl.StringVar(&f.to, "to", "", "the datacenter `DC` the group moves to")
	fl.StringSliceVar(&f.topics, "topic", nil, "translate only `TOPIC` (repeatable; default: every topic mirrored from --from to --to)")
	fl.BoolVar(&f.apply, "apply", false, "commit the translated offsets to the group in --to")
	fl.StringVar(&f.planFile, "plan", "", "read datacenters and mirrors from the plan `FILE` instead of compiling DIR")
	fl.DurationVar(&f.timeout, "timeout", 2*time.Minute, "give up after `DURATION`")
	for _, name := range []string{"group", "from", "to"} {
		_ = translate.MarkFlagRequired(name)
	}
	cmd.AddCommand(translate)
	return cmd
}

func translateGroup(ctx context.Context, out io.Writer, args []string, f translateFlags) error {
	p, err := definitionsPlan(args, f.planFile)
	if err != nil {
		return err
	}
	topics, err := translateTopics(p, f)
	if err != nil {
		return exit(1, err)
	}
	fromOpts, err := kafkaconn.Options(p.Datacenters[f.from])
	if err != nil {
		return exit(1, fmt.Errorf("datacenter %s: %w", f.from, err))
	}
	toOpts, err := kafkaconn.Options(p.Datacenters[f.to])
	if err != nil {
		return exit(1, fmt.Errorf("datacenter %s: %w", f.to, err))
	}
	// A broker that takes the connection and never answers holds a request
	// for the client's timeout overhead whatever the context says.
	overhead := kgo.RequestTimeoutOverhead(min(f.timeout, 10*time.Second))
	fromOpts, toOpts = append(fromOpts, overhead), append(toOpts, overhead)
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	// giveUp names what went wrong with a datacenter: one refusing ferry's
	// credentials or TLS settings, or one that did not answer.
	giveUp := func(err error) error {
		var active *offsets.ActiveError
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return exit(1, fmt.Errorf("gave up after %s: %s or %s did not answer in time; check their brokers or raise --timeout", f.timeout, f.from, f.to))
		case errors.As(err, &active):
			return exit(1, err)
		}
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, dc := range []string{f.from, f.to} {
			if refused := kafkaconn.Diagnose(dctx, dc, p.Datacenters[dc]); refused != nil {
				return exit(1, refused)
			}
		}
		return exit(1, err)
	}
	tr, err := offsets.New(f.from, fromOpts, f.to, toOpts)
	if err != nil {
		return exit(1, err)
	}
	defer tr.Close()
	if f.apply {
		if err := tr.Inactive(ctx, f.group); err != nil {
			return giveUp(err)
		}
	}
	parts, err := tr.TranslateGroup(ctx, f.group, topics)
	if err != nil {
		return giveUp(err)
	}
	var translated, rereads, pending int64
	for _, p := range parts {
		if p.Translated() {
			translated, rereads, pending = translated+1, rereads+p.Rereads, pending+p.Pending
		}
	}
	if translated == 0 {
		return exit(1, fmt.Errorf("group %s has no committed offsets in %s for %s: nothing to translate", f.group, f.from, topicNames(topics)))
	}
	printTranslation(out, f, parts)
	summary := fmt.Sprintf("group %s: %d of %d partitions translated from %s to %s; %d records will be read again", f.group, translated, len(parts), f.from, f.to, rereads)
	if pending > 0 {
		summary += fmt.Sprintf(" (%d of them not mirrored to %s yet)", pending, f.to)
	}
	if !f.apply {
		fmt.Fprintln(out, summary+"; --apply commits them")
		return nil
	}
	if err := tr.Commit(ctx, f.group, parts); err != nil {
		return giveUp(err)
	}
	fmt.Fprintf(out, "%s; committed to group %s in %s\n", summary, f.group, f.to)
	return nil
}

func printTranslation(out io.Writer, f translateFlags, parts []offsets.Partition) {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "TOPIC\tPARTITION\t%s OFFSET\t%s OFFSET\tRE-READS\tNOTE\n", strings.ToUpper(f.from), strings.ToUpper(f.to))
	for _, p := range parts {
		if !p.Translated() {
			fmt.Fprintf(tw, "%s\t%d\t-\t-\t-\t%s\n", p.Topic, p.Partition, p.Note)
			continue
		}
		note := p.Note
		if p.Pending > 0 {
			note = strings.TrimPrefix(note+fmt.Sprintf("; %d not mirrored to %s yet", p.Pending, f.to), "; ")
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", p.Topic, p.Partition, p.Source, p.Target, p.Rereads, note)
	}
	tw.Flush()
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		fmt.Fprintln(out, strings.TrimRight(line, " ")) // no padding after an empty note
	}
}

// definitionsPlan is the plan of the definitions: read from planFile, or
// compiled from the directory argument.
func definitionsPlan(args []string, planFile string) (*plan.Plan, error) {
	if planFile == "" {
		return compileWith(dirArg(args), "", "")
	}
	p, err := readPlan(planFile)
	if err != nil {
		return nil, exit(1, err)
	}
	return p, nil
}

// translateTopics checks the flags against the plan and returns the topics
// to translate.
func translateTopics(p *plan.Plan, f translateFlags) ([]offsets.Topic, error) {
	var dcs []string
	for name := range p.Datacenters {
		dcs = append(dcs, name)
	}
	sort.Strings(dcs)
	for _, dc := range []string{f.from, f.to} {
		if !slices.Contains(dcs, dc) {
			return nil, fmt.Errorf("datacenter %s is not in the definitions (datacenters: %s)", dc, strings.Join(dcs, ", "))
		}
	}
	if f.from == f.to {
		return nil, fmt.Errorf("--from and --to both name %s: name the datacenter the group moves to", f.from)
	}
	mirrored := offsets.MirroredTopics(p, f.from, f.to)
	if len(mirrored) == 0 {
		return nil, fmt.Errorf("no topic is mirrored from %s to %s in the definitions", f.from, f.to)
	}
	if len(f.topics) == 0 {
		return mirrored, nil
	}
	var out []offsets.Topic
	for _, name := range f.topics {
		i := slices.IndexFunc(mirrored, func(t offsets.Topic) bool { return t.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("topic %s is not mirrored from %s to %s in the definitions (mirrored: %s)", name, f.from, f.to, topicNames(mirrored))
		}
		out = append(out, mirrored[i])
	}
	return out, nil
}

func topicNames(topics []offsets.Topic) string {
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	return strings.Join(names, ", ")
}
