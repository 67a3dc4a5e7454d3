package cli

import (
	"fmt"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/internal/keyfile"
)

// LogClient is a client of the log at url with the token in tokenFile
// (none if empty; the file must be mode 0600), trusting the roots in
// caFile besides the system's for an https URL, and configured further by
// opts.
func LogClient(url, tokenFile, caFile string, opts ...client.Option) (*client.Client, error) {
	pool, err := CAPool(caFile)
	if err != nil {
		return nil, err
	}
	opts = append([]client.Option{client.WithRootCAs(pool)}, opts...)
	if tokenFile != "" {
		b, err := keyfile.Read(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		opts = append(opts, client.WithToken(strings.TrimSpace(string(b))))
	}
	c, err := client.New(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	return c, nil
}
