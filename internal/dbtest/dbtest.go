// Package dbtest gives tests the servers of the s3 storage: a MariaDB
// database and an S3 bucket of their own.
//
// .ci/run starts one MariaDB (Debian's mariadb-server) and one SeaweedFS
// (pinned in tools/s3) on 127.0.0.1 and names them in LLMAUDIT_TEST_MYSQL
// (a DSN without a database, e.g. root@tcp(127.0.0.1:3306)/) and
// LLMAUDIT_TEST_S3 (the endpoint URL; credentials in AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY); each test gets a new database and bucket there.
// Without those variables a test process starts its own servers from the
// same binaries. Tests that stop and restart a server (the reliability
// suite) always start their own (StartMariaDB, StartS3).
//
// When a server cannot be had, the test is skipped, unless
// LLMAUDIT_TEST_REQUIRE names it (mariadb, s3; .ci/run sets both): then it
// fails, so that CI never passes by skipping.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/llmaudittrail/llmaudittrail/internal/testproc"
)

// Environment variables.
const (
	EnvMySQL   = "LLMAUDIT_TEST_MYSQL"
	EnvS3      = "LLMAUDIT_TEST_S3"
	EnvRequire = "LLMAUDIT_TEST_REQUIRE"
)

// Credentials of the S3 servers this package starts (and .ci/run's).
const (
	AccessKey = "llmaudit-test"
	SecretKey = "llmaudit-test-secret"
)

func unavailable(t testing.TB, what, why string) {
	t.Helper()
	for _, r := range strings.Split(os.Getenv(EnvRequire), ",") {
		if strings.TrimSpace(r) == what {
			t.Fatalf("%s is required (%s=%s) but not available: %s", what, EnvRequire, os.Getenv(EnvRequire), why)
		}
	}
	t.Skipf("%s is not available (%s); .ci/run installs and starts it", what, why)
}

func random(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

var (
	sharedMu    sync.Mutex
	sharedMySQL *MariaDBServer
	sharedS3    *S3Server
)

// MariaDB returns the DSN of a new, empty database (dropped at cleanup).
func MariaDB(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvMySQL)
	if base == "" {
		sharedMu.Lock()
		if sharedMySQL == nil {
			s, err := startMariaDB(processDir())
			if err != nil {
				sharedMu.Unlock()
				unavailable(t, "mariadb", err.Error())
			}
			sharedMySQL = s
		}
		base = sharedMySQL.DSN("")
		sharedMu.Unlock()
	}
	return CreateDB(t, base)
}

// CreateDB creates a database on the server of base (a DSN whose database
// is ignored) and returns the DSN naming it; it is dropped at cleanup.
func CreateDB(t testing.TB, base string) string {
	t.Helper()
	c, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvMySQL, err)
	}
	c.DBName = ""
	admin, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := random("t_")
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		unavailable(t, "mariadb", err.Error())
	}
	c.DBName = name
	t.Cleanup(func() {
		if db, err := sql.Open("mysql", base); err == nil {
			db.Exec("DROP DATABASE IF EXISTS " + name)
			db.Close()
		}
	})
	return c.FormatDSN()
}

// S3 returns the endpoint of an S3 server and a new bucket name on it (the
// bucket is not created), with the credentials set in the environment.
func S3(t testing.TB) (endpoint, bucket string) {
	t.Helper()
	endpoint = os.Getenv(EnvS3)
	if endpoint == "" {
		sharedMu.Lock()
		if sharedS3 == nil {
			s, err := startS3(t, processDir())
			if err != nil {
				sharedMu.Unlock()
				unavailable(t, "s3", err.Error())
			}
			sharedS3 = s
		}
		endpoint = sharedS3.Endpoint
		sharedMu.Unlock()
		SetCredentials(t)
	}
	return endpoint, random("t-")
}

// SetCredentials points the AWS SDK at the test servers' credentials.
func SetCredentials(t testing.TB) {
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	}
	if os.Getenv("AWS_REGION") == "" {
		t.Setenv("AWS_REGION", "us-east-1")
	}
}

var (
	procDirOnce sync.Once
	procDir     string
)

// processDir is a short directory for the servers shared by this test
// process (a Unix socket path must stay under 108 bytes). They end with the
// process (Pdeathsig).
func processDir() string {
	procDirOnce.Do(func() {
		d, err := os.MkdirTemp("", "llmdb")
		if err != nil {
			panic(err)
		}
		procDir = d
	})
	return procDir
}

// daemon is a server process this package started, which a test may stop
// and start again.
type daemon struct {
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *testproc.Buffer
}

// launch starts cmd (ended with this process: Pdeathsig) with its output
// kept, and returns a channel closed when it exits.
func (d *daemon) launch(cmd *exec.Cmd) (chan struct{}, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.out = new(testproc.Buffer)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d.cmd, d.done = cmd, make(chan struct{})
	done := d.done
	go func() { cmd.Wait(); close(done) }()
	return done, nil
}

// Stop shuts the server down cleanly (SIGTERM) and waits for it.
func (d *daemon) Stop() { d.signal(syscall.SIGTERM) }

// Kill kills the server (SIGKILL), as a crash would.
func (d *daemon) Kill() { d.signal(syscall.SIGKILL) }

func (d *daemon) signal(sig syscall.Signal) {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Output is what the server printed since it last started.
func (d *daemon) Output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// MariaDBServer is a MariaDB server this process started.
type MariaDBServer struct {
	Dir  string
	Port int
	daemon
}

// mariadbd finds Debian's MariaDB server binary.
func mariadbd() (server, install string, err error) {
	for _, n := range []string{"mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld"} {
		if p, err := exec.LookPath(n); err == nil {
			server = p
			break
		}
	}
	for _, n := range []string{"mariadb-install-db", "/usr/bin/mariadb-install-db", "mysql_install_db"} {
		if p, err := exec.LookPath(n); err == nil {
			install = p
			break
		}
	}
	if server == "" || install == "" {
		return "", "", fmt.Errorf("mariadbd or mariadb-install-db not found (Debian package mariadb-server)")
	}
	return server, install, nil
}

// StartMariaDB starts a MariaDB server of the test's own, stopped at
// cleanup.
func StartMariaDB(t testing.TB) *MariaDBServer {
	t.Helper()
	d, err := os.MkdirTemp("", "llmdb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	s, err := startMariaDB(d)
	if err != nil {
		unavailable(t, "mariadb", err.Error())
	}
	t.Cleanup(s.Kill)
	return s
}

func startMariaDB(dir string) (*MariaDBServer, error) {
	server, install, err := mariadbd()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if out, err := exec.Command(install, "--no-defaults", "--datadir="+data, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--user=root").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %v\n%s", err, out)
	}
	l, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &MariaDBServer{Dir: dir, Port: l}
	return s, s.start(server)
}

func (s *MariaDBServer) start(server string) error {
	done, err := s.launch(exec.Command(server, "--no-defaults", "--datadir="+filepath.Join(s.Dir, "data"), "--socket="+filepath.Join(s.Dir, "sock"),
		fmt.Sprintf("--port=%d", s.Port), "--bind-address=127.0.0.1", "--user=root", "--pid-file="+filepath.Join(s.Dir, "pid"),
		"--innodb-buffer-pool-size=128M", "--innodb-flush-log-at-trx-commit=1", "--skip-name-resolve"))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		db, err := sql.Open("mysql", s.DSN(""))
		if err == nil {
			err = db.Ping()
			db.Close()
		}
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("mariadbd exited: %s", s.Output())
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("mariadbd did not answer within 60 s: %v\n%s", err, s.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// DSN returns the DSN of database db (empty: none) as root over TCP.
func (s *MariaDBServer) DSN(db string) string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", s.Port, db)
}

// Restart starts the server again on the same data and port.
func (s *MariaDBServer) Restart(t testing.TB) {
	t.Helper()
	server, _, err := mariadbd()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.start(server); err != nil {
		t.Fatal(err)
	}
}

func freePort() (int, error) {
	var p int
	_, err := fmt.Sscanf(strings.TrimPrefix(freeAddr(), "127.0.0.1:"), "%d", &p)
	return p, err
}

func freeAddr() string {
	l, err := netListen()
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}

// waitCtx is a context with a deadline for a server's start.
func waitCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 90*time.Second)
}

// KillConnections kills, through admin, every connection of the server
// that the condition on information_schema.processlist selects (never
// admin's own), and returns how many it found.
func KillConnections(t testing.TB, admin *sql.DB, where string, args ...any) int {
	t.Helper()
	ctx, cancel := waitCtx()
	defer cancel()
	c, err := admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rows, err := c.QueryContext(ctx, "SELECT id FROM information_schema.processlist WHERE id <> CONNECTION_ID() AND ("+where+")", args...)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		c.ExecContext(ctx, fmt.Sprintf("KILL %d", id)) // it may have ended already
	}
	return len(ids)
}
