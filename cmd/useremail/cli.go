package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// usageError is a wrong command line. main names it in one line, with the
// command whose --help tells more, and exits 2.
type usageError struct {
	cmd string // "serve", "outbox list"; empty for the top level
	msg string
}

func (e usageError) Error() string {
	if e.cmd == "" {
		return fmt.Sprintf("useremail: %s; run useremail --help", e.msg)
	}
	return fmt.Sprintf("useremail %s: %s; run useremail %s --help", e.cmd, e.msg, e.cmd)
}

// newFlagSet returns the flag set of a command, whose --help prints
// synopsis, about and the flags.
func newFlagSet(name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s\n\n%s\n", synopsis, about)
		printFlags(w, fs)
	}
	return fs
}

// printFlags lists the flags of fs as the usage texts write them, with two
// dashes (the flag package takes one or two).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintln(w, "\nFlags:")
			first = false
		}
		kind, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s %s\n    \t%s", f.Name, kind, usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// parseFlags parses args into fs. For -h or --help, anywhere before "--", it
// prints the usage to stdout and returns flag.ErrHelp, which run takes for
// success; a wrong flag is a usageError naming it.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	err := fs.Parse(args)
	if err == nil && wantsHelp(fs.Args()) {
		err = flag.ErrHelp
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		fs.SetOutput(io.Discard)
		return flag.ErrHelp
	case err != nil:
		msg := err.Error()
		if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
			msg = "unknown flag " + asTyped(args, name)
		}
		return usageError{cmd: fs.Name(), msg: msg}
	}
	return nil
}

// asTyped returns the flag name as args spell it: -name or --name.
func asTyped(args []string, name string) string {
	for _, a := range args {
		if flagName(a) == name {
			a, _, _ = strings.Cut(a, "=")
			return a
		}
	}
	return "-" + name
}

// flagName returns the name of a flag argument (-name, --name=value), or ""
// for an argument that is not a flag.
func flagName(arg string) string {
	if !strings.HasPrefix(arg, "-") {
		return ""
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-"), "=")
	return name
}

// wantsHelp reports whether a help flag stands among args (the arguments
// left after the flags, where the flag package does not look).
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// parseOnlyFlags is parseFlags for a command that takes no arguments
// besides its flags.
func parseOnlyFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{cmd: fs.Name(), msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// subcommand is one command of a group (user, outbox).
type subcommand struct {
	name string
	run  func(args []string) error
}

// runGroup runs the subcommand of group that args name; usage is the
// group's --help.
func runGroup(group, usage string, args []string, stdout io.Writer, subs ...subcommand) error {
	if len(args) == 0 {
		return usageError{cmd: group, msg: "missing subcommand"}
	}
	if wantsHelp(args[:1]) || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return flag.ErrHelp
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(args[1:])
		}
	}
	if strings.HasPrefix(args[0], "-") {
		return usageError{cmd: group, msg: "unknown flag " + args[0]}
	}
	return usageError{cmd: group, msg: fmt.Sprintf("unknown subcommand %q", args[0])}
}
