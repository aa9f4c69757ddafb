// Command graphbench copies a wave of mailboxes from a Dovecot source into
// the fake Graph (testkit/fakegraph) at once, with Graph's limits scaled
// so that the run takes a minute, not hours: the upload window of 5
// minutes becomes 10 s and the budget 5 MiB in it (0.5 MiB/s a mailbox, as
// Graph's 150 MB per 5 minutes is 0.5 MB/s), the request budget alike; the
// messages keep their real sizes (a request up to Graph's 4 MB). It prints
// name=value figures:
//
//   - achieved_over_budget: the bytes uploaded over what the budgets
//     allowed while each mailbox was being written, from its first upload
//     to its last (a sliding window allows UploadBytes at once and again
//     each window: UploadBytes x (time/window + 1));
//     achieved_over_budget_whole_copy is the same over each copy's whole
//     time, its login, folder listing and last verification included;
//   - refused_share: the requests the service refused for its limits, over
//     all requests (the copier keeps the limits: 0 expected);
//   - lost and duplicated: source messages missing from Graph, and items
//     there twice, over every mailbox;
//   - requests_per_second, mailboxes, megabytes, elapsed_seconds, and
//     graphbench_peak_rss_mb (the process holds the copier and the fake,
//     which keeps every item it was given in memory).
//
// Run it from the module root (make bench-graph):
//
//	go run ./bench/graphbench -mailboxes 8 -mbytes 30
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"mailwave/contract"
	"mailwave/mail/graph"
	"mailwave/mail/graphcopy"
	"mailwave/mail/imapcopy"
	"mailwave/mail/port"
	"mailwave/testkit/dovecot"
	"mailwave/testkit/fakegraph"
	"mailwave/testkit/imaptest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "graphbench:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("mailboxes", 8, "mailboxes copied at once")
	mbytes := flag.Int("mbytes", 30, "megabytes in each mailbox")
	budget := flag.Int64("upload-bytes", 5<<20, "each mailbox's upload budget per window (Graph: 150 MB)")
	window := flag.Duration("window", 10*time.Second, "the upload window (Graph: 5 minutes)")
	latency := flag.Duration("latency", 20*time.Millisecond, "the time each Graph request takes")
	flag.Parse()

	dir, err := os.MkdirTemp("", "graphbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	users := make([]dovecot.User, *n)
	for i := range users {
		users[i] = dovecot.User{Name: fmt.Sprintf("u%d", i), Password: "pw"}
	}
	src, err := dovecot.Start(filepath.Join(dir, "src"), dovecot.Options{Users: users, Plaintext: true, Storage: dovecot.Maildir})
	if err != nil {
		return err
	}
	defer src.Stop()
	folders := []string{"INBOX", "Archive", "Sent"}
	want := map[string]int{}
	for i, u := range users {
		count, _, err := imaptest.SeedMaildir(src, u.Name, imaptest.BulkFolders(folders),
			imaptest.GenerateBulk(int64(i+1), *mbytes*20, int64(*mbytes)<<20, folders))
		if err != nil {
			return err
		}
		want[u.Name] = count
	}
	fmt.Fprintf(os.Stderr, "graphbench: %d mailboxes of %d MB at the source\n", *n, *mbytes)

	// Every documented limit scaled by the same factor as the upload
	// budget's rate (150 MB per 5 minutes).
	scale := (float64(*budget) / window.Seconds()) / (150e6 / 300)
	requests := max(int(10_000*scale*window.Seconds()/600), 50)
	upns := make([]string, *n)
	for i := range upns {
		upns[i] = fmt.Sprintf("u%d@trust.nhs.example", i)
	}
	g := fakegraph.Start(fakegraph.Options{Tenant: "t", ClientID: "app", Secret: "pw", Mailboxes: upns, Latency: *latency,
		Limits: fakegraph.Limits{Concurrent: 4, Requests: requests, RequestWindow: *window, UploadBytes: *budget, UploadWindow: *window, MaxBody: 4 << 20}})
	defer g.Close()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, g.Client())
	tokens, err := graph.NewTokens(ctx).Source(graph.App{Tenant: "t", ClientID: "app", Secret: "pw", LoginURL: g.LoginURL()}, graph.ScopeGraph)
	if err != nil {
		return err
	}
	budgets, err := graph.NewBudgets(graph.Limits{Concurrent: 4, UploadBytes: *budget, UploadWindow: *window,
		Requests: requests, RequestWindow: *window, Margin: 50 * time.Millisecond})
	if err != nil {
		return err
	}
	reader, err := imapcopy.NewReader(imapcopy.Endpoint{Host: "127.0.0.1", Port: src.Port, Security: imapcopy.SecurityNone},
		func(_ context.Context, _ imapcopy.Side, m contract.MailboxRef) (imapcopy.Credentials, error) {
			local, _, _ := strings.Cut(m.Address, "@")
			return imapcopy.Credentials{Mechanism: imapcopy.MechPlain, Username: local, Password: "pw"}, nil
		})
	if err != nil {
		return err
	}
	c, err := graphcopy.New(graphcopy.Options{Source: reader, Graph: graph.NewClient(g.Client(), g.GraphURL(), tokens, budgets)})
	if err != nil {
		return err
	}

	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bytes int64
	var allowed float64 // what the budgets of the mailboxes in flight allowed, each for its own time
	var failed error
	for i := range *n {
		wg.Go(func() {
			began := time.Now()
			st, err := c.Copy(context.Background(), port.CopyRequest{Mailbox: contract.MailboxRef{Key: fmt.Sprintf("k%d", i), Address: upns[i]}, Pass: contract.PassBulk})
			took := time.Since(began)
			mu.Lock()
			defer mu.Unlock()
			bytes += st.Bytes
			allowed += float64(*budget) * (took.Seconds()/window.Seconds() + 1)
			if err != nil && failed == nil {
				failed = err
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failed != nil {
		return failed
	}

	var lost, duplicated int
	for i, upn := range upns {
		ids := map[string]int{}
		for _, f := range g.Folders(upn) {
			for _, m := range f.Messages {
				ids[m.Props[strings.ToLower(graph.SourceProperty)]]++
			}
		}
		total := 0
		for _, k := range ids {
			total += k
			duplicated += max(k-1, 0)
		}
		lost += max(want[fmt.Sprintf("u%d", i)]-(total-duplicated), 0)
	}
	st := g.Stats()
	refused := st.Refused["ApplicationThrottled"]
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("mailboxes=%d\n", *n)
	fmt.Printf("megabytes=%.1f\n", float64(bytes)/1e6)
	fmt.Printf("elapsed_seconds=%.1f\n", elapsed.Seconds())
	// While each mailbox was being written: from its first upload to its
	// last, the budget allowed UploadBytes x (time/window + 1).
	var uploading float64
	for _, u := range st.Uploads {
		uploading += float64(*budget) * (u.Last.Sub(u.First).Seconds()/window.Seconds() + 1)
	}
	fmt.Printf("achieved_over_budget=%.3f\n", float64(st.Uploaded)/uploading)
	fmt.Printf("achieved_over_budget_whole_copy=%.3f\n", float64(st.Uploaded)/allowed)
	fmt.Printf("request_bytes_over_source_bytes=%.3f\n", float64(st.Uploaded)/float64(max(bytes, 1)))
	fmt.Printf("refused_share=%.4f\n", float64(refused)/float64(max(st.Requests, 1)))
	fmt.Printf("lost=%d\n", lost)
	fmt.Printf("duplicated=%d\n", duplicated)
	fmt.Printf("requests_per_second=%.1f\n", float64(st.Requests)/elapsed.Seconds())
	fmt.Printf("graphbench_peak_rss_mb=%.1f\n", float64(ru.Maxrss)/1024)
	return nil
}
