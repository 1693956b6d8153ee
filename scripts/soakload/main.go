// Command soakload is the load generator of scripts/soak.sh: it holds a fixed
// request rate against running tether nodes on loopback and prints what
// happened. It is a test harness, not part of the product, so it lives here
// rather than in the tether binary; the logic is internal/bench.Soak.
//
//	soakload -admin-key K -node PUBLIC,ADMIN,PID [-node …] [-rate 1000] [-duration 10m] [-json FILE]
//	         [-fault AT,NAME,COMMAND …] [-flood AT,FOR,CLIENTS …] [-chart FILE.svg]
//
// A -fault runs COMMAND with sh -c at AT into the run (restart the store,
// promote a replica…); the fault lasts until it exits. A -flood sends
// GET /v1/session from CLIENTS clients as fast as they go, for FOR. Errors
// during a fault and -settle after it are reported against it; only errors
// outside faults, and any revoked session accepted, fail the run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tetherhq/tether/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "soakload: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg bench.SoakConfig
	var jsonFile string
	fs := flag.NewFlagSet("soakload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Func("node", "a node as PUBLIC_URL,ADMIN_URL,PID (repeat; loopback only)", func(v string) error {
		f := strings.Split(v, ",")
		if len(f) != 3 {
			return fmt.Errorf("want PUBLIC_URL,ADMIN_URL,PID")
		}
		pid, err := strconv.Atoi(f[2])
		if err != nil {
			return err
		}
		cfg.Nodes = append(cfg.Nodes, bench.SoakNode{Public: f[0], Admin: f[1], PID: pid})
		return nil
	})
	fs.StringVar(&cfg.AdminKey, "admin-key", os.Getenv("TETHER_ADMIN_KEY"), "the nodes' admin key (default $TETHER_ADMIN_KEY)")
	fs.IntVar(&cfg.Rate, "rate", 1000, "GET /v1/session per second, over all nodes")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "how long to hold the rate")
	fs.IntVar(&cfg.Sessions, "sessions", 1000, "sessions in the pool")
	fs.DurationVar(&cfg.RevokeEvery, "revoke-every", 500*time.Millisecond, "revoke and replace a session this often")
	fs.DurationVar(&cfg.RolesEvery, "roles-every", time.Second, "change a subject's roles this often")
	fs.DurationVar(&cfg.Staleness, "staleness", time.Second, "the nodes' cache bound (--max-staleness)")
	fs.DurationVar(&cfg.Window, "window", time.Minute, "latency percentiles per window")
	fs.DurationVar(&cfg.Sample, "sample", 10*time.Second, "resident memory sampled this often")
	fs.StringVar(&jsonFile, "json", "", "also write the report as JSON to this file")
	fs.Func("fault", "AT,NAME,COMMAND: run COMMAND (sh -c) at AT into the run (repeat)", func(v string) error {
		f := strings.SplitN(v, ",", 3)
		if len(f) != 3 || f[1] == "" || f[2] == "" {
			return fmt.Errorf("want AT,NAME,COMMAND")
		}
		at, err := time.ParseDuration(f[0])
		if err != nil {
			return err
		}
		command := f[2]
		cfg.Faults = append(cfg.Faults, bench.SoakFault{Name: f[1], At: at, Do: func(ctx context.Context) error {
			cmd := exec.CommandContext(ctx, "sh", "-c", command)
			cmd.Stdout, cmd.Stderr = stderr, stderr
			return cmd.Run()
		}})
		return nil
	})
	fs.Func("flood", "AT,FOR,CLIENTS: a flood of GET /v1/session (repeat)", func(v string) error {
		f := strings.Split(v, ",")
		if len(f) != 3 {
			return fmt.Errorf("want AT,FOR,CLIENTS")
		}
		at, err1 := time.ParseDuration(f[0])
		d, err2 := time.ParseDuration(f[1])
		n, err3 := strconv.Atoi(f[2])
		if err := errors.Join(err1, err2, err3); err != nil || n <= 0 {
			return fmt.Errorf("want AT,FOR,CLIENTS: %v", err)
		}
		cfg.Faults = append(cfg.Faults, bench.SoakFault{Name: fmt.Sprintf("flood ×%d", n), At: at, Flood: n, For: d})
		return nil
	})
	fs.DurationVar(&cfg.Settle, "settle", 10*time.Second, "after a fault, how long errors still count against it")
	var chartFile string
	fs.StringVar(&chartFile, "chart", "", "also draw errors, p99 and memory over time, faults shaded, as SVG to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(cfg.Nodes) == 0 || cfg.AdminKey == "" {
		return fmt.Errorf("need at least one -node and an admin key")
	}
	cfg.Progress = stderr
	fmt.Fprintf(stderr, "soak: %d req/s for %v against %d nodes, %d sessions\n", cfg.Rate, cfg.Duration, len(cfg.Nodes), cfg.Sessions)
	rep, err := bench.Soak(ctx, cfg)
	if err != nil {
		return err
	}
	bench.WriteSoakReport(stdout, rep)
	if jsonFile != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(jsonFile, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if chartFile != "" {
		f, err := os.Create(chartFile)
		if err != nil {
			return err
		}
		err = bench.SoakChart(f, rep)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if rep.Errors > 0 {
		return fmt.Errorf("%d errors", rep.Errors)
	}
	return nil
}
