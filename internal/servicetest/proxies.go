package servicetest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ---- Reverse proxies (nginx, Caddy) ----

// ProxyServer is a real reverse proxy process owned by one test, listening
// on 127.0.0.1:Port.
type ProxyServer struct {
	Port int
	Dir  string // its configuration, logs and temporary files

	t    testing.TB
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	exit chan struct{}
}

// URL is the proxy's base URL.
func (p *ProxyServer) URL() string { return "http://127.0.0.1:" + strconv.Itoa(p.Port) }

// Output is what the proxy printed, and its error log, for a failure message.
func (p *ProxyServer) Output() string {
	log, _ := os.ReadFile(filepath.Join(p.Dir, "error.log"))
	return p.out.String() + string(log)
}

// StartNginx runs nginx in the foreground, as one process (master_process
// off), with servers as the body of its http block: one or more server
// blocks that listen on 127.0.0.1:port. Temporary files and logs stay in a
// directory of the test's own. It waits until the port answers; t.Cleanup
// stops it (SIGTERM, then SIGKILL).
func StartNginx(t testing.TB, port int, servers string) *ProxyServer {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/sbin/nginx"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		SkipOrFail(t, "nginx not installed: %v", err)
	}
	dir := t.TempDir()
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
%[2]s
}
`, dir, servers)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return startProxy(t, "nginx", port, dir, exec.Command(bin, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log")))
}

// StartCaddy runs `caddy run` with site as its Caddyfile, after global
// options that keep it to itself: no admin endpoint (parallel tests would
// share :2019), no automatic HTTPS, and its data and config under the test's
// directory. The site must listen on 127.0.0.1:port (`bind 127.0.0.1`).
func StartCaddy(t testing.TB, port int, site string) *ProxyServer {
	t.Helper()
	bin, err := exec.LookPath("caddy")
	if err != nil {
		SkipOrFail(t, "caddy not installed: %v", err)
	}
	dir := t.TempDir()
	conf := "{\n\tadmin off\n\tauto_https off\n}\n\n" + site + "\n"
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	return startProxy(t, "caddy", port, dir, cmd)
}

func startProxy(t testing.TB, name string, port int, dir string, cmd *exec.Cmd) *ProxyServer {
	t.Helper()
	p := &ProxyServer{Port: port, Dir: dir, t: t, name: name, cmd: cmd, out: &syncBuffer{}, exit: make(chan struct{})}
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		cmd.Wait()
		close(p.exit)
	}()
	t.Cleanup(p.stop) // registered after TempDir, so it runs before the dir goes
	err := poll(15*time.Second, func() error {
		select {
		case <-p.exit:
			return fmt.Errorf("exited at start (%v)", cmd.ProcessState)
		default:
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		t.Fatalf("%s on port %d not up: %v\n%s", name, port, err, p.Output())
	}
	return p
}

func (p *ProxyServer) stop() {
	select {
	case <-p.exit:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exit:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exit
		p.t.Errorf("%s did not stop within 10 s of SIGTERM", p.name)
	}
}

// syncBuffer is a bytes.Buffer that a process's output copier and the test
// may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
