package main

import (
	"testing"
	"time"

	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/smtpclient"
)

// TestQueueOptionsFromConfig: [queue]'s bounds and timeouts reach the
// queue.
func TestQueueOptionsFromConfig(t *testing.T) {
	cfg, err := config.Parse([]byte("[queue]\nmax_connections = 9\nmax_per_domain = 3\nmax_per_host = 4\ngreeting_timeout = \"2s\"\nmail_timeout = \"3s\"\nrcpt_timeout = \"4s\"\ndata_init_timeout = \"5s\"\ndata_block_timeout = \"6s\"\ndata_done_timeout = \"7s\"\ncommand_timeout = \"8s\"\nconnection_timeout = \"9m\"\n"), "q.toml")
	if err != nil {
		t.Fatal(err)
	}
	o := queueOptions(cfg)
	want := smtpclient.Timeouts{Greeting: 2 * time.Second, Mail: 3 * time.Second, Rcpt: 4 * time.Second, DataInit: 5 * time.Second,
		DataBlock: 6 * time.Second, DataDone: 7 * time.Second, Command: 8 * time.Second, Connection: 9 * time.Minute}
	if o.MaxConcurrent != 9 || o.MaxPerDomain != 3 || o.MaxPerHost != 4 || o.Timeouts != want || o.Dial == nil {
		t.Errorf("options: max %d/%d/%d timeouts %+v", o.MaxConcurrent, o.MaxPerDomain, o.MaxPerHost, o.Timeouts)
	}
}
