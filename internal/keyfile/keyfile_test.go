package keyfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestCreateAndRead(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "k.key")
	if err := Create(p, []byte("secret\n")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	if st, _ := os.Stat(filepath.Dir(p)); st.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v, want 0700", st.Mode().Perm())
	}
	b, err := Read(p)
	if err != nil || string(b) != "secret\n" {
		t.Fatalf("Read = %q, %v", b, err)
	}
	// Never replaced.
	if err := Create(p, []byte("other")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create = %v, want fs.ErrExist", err)
	}
	if b, _ := Read(p); string(b) != "secret\n" {
		t.Fatal("Create replaced an existing key")
	}
	if ok, err := Exists(p); !ok || err != nil {
		t.Fatalf("Exists = %v, %v", ok, err)
	}
	if ok, err := Exists(filepath.Join(dir, "none")); ok || err != nil {
		t.Fatalf("Exists(missing) = %v, %v", ok, err)
	}
}

func TestReadRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644, 0o666} {
		p := filepath.Join(dir, mode.String())
		os.WriteFile(p, []byte("k"), 0o600)
		os.Chmod(p, mode)
		if _, err := Read(p); !errors.Is(err, ErrInsecurePermissions) {
			t.Errorf("mode %v: Read = %v, want ErrInsecurePermissions", mode, err)
		}
	}
	if _, err := Read(dir); err == nil {
		t.Error("Read accepted a directory")
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, 1<<16+1), 0o600)
	if _, err := Read(big); err == nil {
		t.Error("Read accepted a 64 KiB+ key file")
	}
	if _, err := Read(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read(missing) = %v, want fs.ErrNotExist", err)
	}
}
