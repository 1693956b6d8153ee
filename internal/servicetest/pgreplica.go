package servicetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a PostgreSQL server process owned by one test. Kill, Pause
// and Resume reach every process of the server.
type Postgres struct {
	process
	Port int
	Dir  string // its data directory
}

// URL is a URL of the server's postgres database.
func (p *Postgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.Port)
}

// PostgresPair is a primary and one streaming standby, started by
// StartPostgresPair.
type PostgresPair struct {
	Primary, Standby *Postgres
	bin              string
	cred             *syscall.Credential // when run as root: the postgres user's
}

// URL names both servers, so that a pgx client connects to whichever is
// writable: the primary, or after a promotion the standby.
func (p *PostgresPair) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable&target_session_attrs=read-write",
		p.Primary.Port, p.Standby.Port)
}

// StartPostgresPair starts, on free loopback ports in a temporary directory,
// a PostgreSQL primary and a standby that streams from it under the
// application name standby1, and waits until the standby is streaming. With
// synchronous true the primary names standby1 in synchronous_standby_names,
// so that every COMMIT waits for the standby's flush. t.Cleanup kills both
// and removes their files. Run as root, the servers run as the postgres
// user, since PostgreSQL refuses to run as root.
func StartPostgresPair(t testing.TB, synchronous bool) *PostgresPair {
	t.Helper()
	initdb, err := findInitdb()
	if err != nil {
		SkipOrFail(t, "PostgreSQL's server programs (initdb) not installed: %v", err)
	}
	pp := &PostgresPair{bin: filepath.Dir(initdb)}
	base, err := os.MkdirTemp("", "tether-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			SkipOrFail(t, "running as root and no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		pp.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chmod(base, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(base, uid, gid); err != nil {
			t.Fatal(err)
		}
	}

	primary := filepath.Join(base, "primary")
	pp.run(t, "initdb", "-D", primary, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	names := ""
	if synchronous {
		names = "standby1"
	}
	pp.Primary = pp.start(t, primary, "-c", "synchronous_standby_names="+names)
	standby := filepath.Join(base, "standby")
	pp.run(t, "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(pp.Primary.Port), "-U", "postgres",
		"-D", standby, "-R", "-X", "stream", "-c", "fast", "--no-sync")
	pp.Standby = pp.start(t, standby, "-c", "cluster_name=standby1")

	want := "async"
	if synchronous {
		want = "sync"
	}
	err = poll(30*time.Second, func() error {
		var state string
		err := pp.Primary.query(`SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1' AND state = 'streaming'`, &state)
		if err == nil && state != want {
			err = fmt.Errorf("sync_state %s, want %s", state, want)
		}
		return err
	})
	if err != nil {
		t.Fatalf("standby not streaming: %v", err)
	}
	return pp
}

// findInitdb looks on PATH, then where Debian and Ubuntu keep the server's
// programs (off PATH), newest version first.
func findInitdb() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.EvalSymlinks(p)
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		return "", errors.New("not on PATH nor in /usr/lib/postgresql/*/bin")
	}
	slices.SortFunc(found, func(a, b string) int { return cmp.Compare(pgVersion(b), pgVersion(a)) })
	return found[0], nil
}

// pgVersion reads the major version from /usr/lib/postgresql/N/bin/initdb.
func pgVersion(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

// command runs a PostgreSQL program from the server's bin directory, as the
// postgres user when we are root.
func (pp *PostgresPair) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pp.bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pp.cred}
	return cmd
}

func (pp *PostgresPair) run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := pp.command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// start runs postgres on dir and a free port until t ends, and waits until
// it accepts connections.
func (pp *PostgresPair) start(t testing.TB, dir string, extra ...string) *Postgres {
	t.Helper()
	port := FreePort(t)
	p := &Postgres{process: process{t: t, what: fmt.Sprintf("postgres on port %d", port), tree: true}, Port: port, Dir: dir}
	args := append([]string{"-D", dir, "-p", strconv.Itoa(p.Port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + filepath.Dir(dir), "-c", "fsync=off",
		"-c", "max_wal_senders=4", "-c", "wal_level=replica"}, extra...)
	cmd := pp.command("postgres", args...)
	exit := p.launch(cmd)
	t.Cleanup(p.Kill)
	err := poll(30*time.Second, func() error {
		select {
		case <-exit:
			return fmt.Errorf("exited at start (%v)", cmd.ProcessState)
		default:
		}
		var one int
		return p.query("SELECT 1", &one)
	})
	if err != nil {
		t.Fatalf("postgres on port %d not up: %v", p.Port, err)
	}
	return p
}

// query runs a one-row query on the server.
func (p *Postgres) query(sql string, dest ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.URL())
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return c.QueryRow(ctx, sql).Scan(dest...)
}

// CutReplication partitions the primary from the standby until the standby
// is resumed: it pauses the standby (Pause) and ends the primary's WAL
// sender, so that what the primary commits from then on reaches the standby
// not at all; what it had sent before is applied once the standby resumes.
func (pp *PostgresPair) CutReplication(t testing.TB) {
	t.Helper()
	pp.Standby.Pause()
	var n int
	if err := pp.Primary.query(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_replication`, &n); err != nil || n != 1 {
		t.Fatalf("ending the WAL sender: %d ended, %v", n, err)
	}
}

// Promote makes the standby a primary and waits until it accepts writes.
func (pp *PostgresPair) Promote(t testing.TB) {
	t.Helper()
	pp.run(t, "pg_ctl", "promote", "-w", "-t", "30", "-D", pp.Standby.Dir)
	err := poll(30*time.Second, func() error {
		var recovering bool
		err := pp.Standby.query("SELECT pg_is_in_recovery()", &recovering)
		if err == nil && recovering {
			err = fmt.Errorf("still in recovery")
		}
		return err
	})
	if err != nil {
		t.Fatalf("standby not promoted: %v", err)
	}
}
