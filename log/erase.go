package log

import (
	"context"
	"errors"
	"fmt"

	"github.com/llmaudittrail/llmaudittrail/vault"
)

// Erased is what ErasePayloads destroyed.
type Erased struct {
	// Payloads counts the payloads whose data key was destroyed.
	Payloads int
	// Forgotten: the storage forgot the erased data too: the vault's
	// write-ahead log was truncated, so that no earlier page image of it is
	// left there, and the journal's released records, which hold payloads
	// sealed with their wrapped keys, were removed.
	Forgotten bool
}

// ErasePayloads destroys the payloads of tenant's sessions: their data
// keys, hence every payload and commitment salt sealed under them; and, if
// pseudonym is not "", the pseudonym's mapping. The leaves and every proof
// stay valid. Sessions and a pseudonym that the vault does not hold are
// skipped. It then makes the storage forget what it destroyed: the vault
// checkpoints its write-ahead log (a checkpoint blocked by readers is
// tried again, three times in all), and once that worked the journal drops
// its released records after every acknowledged event is sequenced. Once a
// key is destroyed ErasePayloads does not fail: Erased.Forgotten says
// whether the storage forgot (the next erasure or the vault's close
// truncates the WAL).
//
// The caller decides what may be erased and records the erasure (package
// governance).
func (l *Log) ErasePayloads(ctx context.Context, tenant string, sessions []string, pseudonym string) (Erased, error) {
	n := 0
	for _, s := range sessions {
		k, err := l.vault.EraseSession(ctx, tenant, s)
		if err != nil && !errors.Is(err, vault.ErrNotFound) {
			return Erased{}, err
		}
		n += k
	}
	if pseudonym != "" {
		if err := l.vault.ErasePseudonym(ctx, tenant, pseudonym); err != nil && !errors.Is(err, vault.ErrNotFound) {
			return Erased{}, err
		}
	}
	// The keys are gone. A checkpoint blocked by readers (after the busy
	// timeout) is retried; if it still fails, Forgotten says so.
	forgotten := false
	for try := 0; try < 3 && !forgotten; try++ {
		if err := l.vault.Forget(ctx); errors.Is(err, vault.ErrNoForget) {
			break
		} else if err != nil {
			l.logger.Warn("erasure: truncating the vault's write-ahead log", "try", try+1, "error", err)
			continue
		}
		forgotten = true
	}
	// The journal still holds the erased payloads sealed, with their
	// wrapped keys, until their records are dropped: drop them now.
	if forgotten {
		if err := l.waitJournal(ctx); err != nil {
			forgotten = false
		} else if err := l.journal.Forget(ctx); err != nil {
			l.logger.Warn("erasure: removing released journal records", "error", err)
			forgotten = false
		}
	}
	return Erased{Payloads: n, Forgotten: forgotten}, nil
}

// WaitIndexed waits (DefaultSessionWait at most) until the session index
// covers every write acknowledged so far (every entry sequenced).
func (l *Log) WaitIndexed(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, DefaultSessionWait)
	defer cancel()
	if err := l.waitJournal(wctx); err != nil {
		return fmt.Errorf("waiting for acknowledged events to be sequenced: %w", err)
	}
	size, err := l.reader.NextIndex(ctx)
	if err != nil {
		return err
	}
	if err := l.index.WaitFor(wctx, size); err != nil {
		return fmt.Errorf("waiting for the session index: %w", err)
	}
	return nil
}
