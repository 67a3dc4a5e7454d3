//go:build linux

// Package keyring keeps secrets in the Linux kernel's key retention service
// (keyrings(7)): a "user" key in the user keyring (@u) of the process's
// user, readable only by that user, never on disk. Operators manage such
// keys with keyctl from Debian's keyutils:
//
//	keyctl padd user llmaudit:master @u < master.hex
package keyring

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrNotFound is returned by Get for a description with no key.
var ErrNotFound = errors.New("no such key in the kernel keyring")

// MaxSize caps a key's payload.
const MaxSize = 4096

// Get returns the payload of the user key desc, searched for in the
// process's keyrings (thread, process, session, then user).
func Get(desc string) ([]byte, error) {
	id, err := search(desc)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, MaxSize)
	n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
	if err != nil {
		return nil, fmt.Errorf("reading key %q: %w", desc, err)
	}
	if n > len(buf) {
		return nil, fmt.Errorf("key %q is larger than %d bytes", desc, MaxSize)
	}
	return buf[:n], nil
}

func search(desc string) (int, error) {
	for _, ring := range []int{unix.KEY_SPEC_SESSION_KEYRING, unix.KEY_SPEC_USER_KEYRING} {
		id, err := unix.KeyctlSearch(ring, "user", desc, 0)
		if err == nil {
			return id, nil
		}
		// An invalidated key is garbage collected a moment later.
		if !errors.Is(err, unix.ENOKEY) && !errors.Is(err, unix.EKEYREVOKED) && !errors.Is(err, unix.EKEYEXPIRED) {
			return 0, fmt.Errorf("searching the kernel keyring for %q: %w", desc, err)
		}
	}
	return 0, ErrNotFound
}

// Add stores data as the user key desc in the user keyring (@u),
// replacing a key of that description there.
func Add(desc string, data []byte) error {
	if len(data) > MaxSize {
		return fmt.Errorf("key %q: larger than %d bytes", desc, MaxSize)
	}
	if _, err := unix.AddKey("user", desc, data, unix.KEY_SPEC_USER_KEYRING); err != nil {
		return fmt.Errorf("adding key %q to the user keyring: %w", desc, err)
	}
	return nil
}

// Remove unlinks the user key desc from the keyrings it is found in.
func Remove(desc string) error {
	id, err := search(desc)
	if err != nil {
		return err
	}
	if _, err := unix.KeyctlInt(unix.KEYCTL_INVALIDATE, id, 0, 0, 0); err != nil {
		return fmt.Errorf("invalidating key %q: %w", desc, err)
	}
	return nil
}
