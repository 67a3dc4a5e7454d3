// Package cli holds the command-line conventions of the project's binaries:
// every (sub)command has a synopsis, --help prints it with the flags to
// stdout and exits 0, and a usage error prints the error and the usage to
// stderr and exits 2. docs/commands.md shows each --help output, and a test
// per binary compares them.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// ExitUsage is the exit code of a command-line mistake.
const ExitUsage = 2

// NewFlagSet returns a flag set for the command name (e.g. "log-server token
// create") whose usage is synopsis (one or more lines, without "usage:") and
// the flags.
func NewFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage:\n")
		for l := range strings.SplitSeq(strings.TrimRight(synopsis, "\n"), "\n") {
			fmt.Fprintf(w, "  %s\n", l)
		}
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(w, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// Parse parses args. ok is false when the command must stop with code: 0
// after --help (usage on stdout), ExitUsage after a bad flag (the error and
// the usage on stderr).
func Parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case err == nil:
		fs.SetOutput(os.Stderr)
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(os.Stdout)
		fs.Usage()
		return 0, false
	default:
		fs.SetOutput(os.Stderr)
		fmt.Fprintf(os.Stderr, "%s: %v\n", fs.Name(), err)
		fs.Usage()
		return ExitUsage, false
	}
}

// Fail prints a usage error for the command and returns ExitUsage.
func Fail(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.SetOutput(os.Stderr)
	fs.Usage()
	return ExitUsage
}

// ReadFile reads the file at path, refusing one larger than limit bytes.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}
