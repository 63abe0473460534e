//go:build unix

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestBackupByAUserWhoCannotWrite: a backup run by a user who can read
// the database but not write it (a backup user), while no server has it
// open, must not leave -wal and -shm files of that user next to it: the
// server, running as the database's owner, could then not open them and
// would not start. It is refused with a message that says what to do,
// and the server starts afterwards.
func TestBackupByAUserWhoCannotWrite(t *testing.T) {
	// Under os.TempDir, not t.TempDir, whose parent only its owner may enter.
	dir, err := os.MkdirTemp("", "octostore-backup-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "live.db")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"token", "create", "--db", db, "--login", "ops"}, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	// A copy of the binary that the other user may run.
	bin := filepath.Join(dir, "octostore")
	body, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, body, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "backup", "--db", db, filepath.Join(dir, "copy.db"))
	cmd.Env = cleanEnv()
	if os.Geteuid() == 0 {
		// Root writes every file: the backup runs as nobody, who may
		// read the database but not write it.
		if err := os.Chmod(db, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	} else if err := os.Chmod(db, 0o444); err != nil {
		t.Fatal(err)
	}
	got, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(got), "run backup as the user that runs the server") {
		t.Errorf("backup by a user who cannot write the database: %v, output %q; want it refused saying whom to run it as", err, got)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Lstat(db + suffix); !os.IsNotExist(err) {
			t.Errorf("%s%s after the backup: %v; want none", db, suffix, err)
		}
	}
	if err := os.Chmod(db, 0o600); err != nil {
		t.Fatal(err)
	}
	startServer(t, db).kill()
}
