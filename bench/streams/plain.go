package main

// plain is the bench's own open-loop load generator for plain (non-streaming)
// chat completions, the second harness beside vegeta: -connections keep-alive
// connections, each its own client as an SDK's would be, and requests
// scheduled at -rate whatever the answers do (a late answer does not delay the
// next request; latency is measured from when a request was due). -burst N
// schedules N requests at once every N/rate seconds instead of one every
// 1/rate: the arrival pattern a proxy's CPU per request depends on.
//
//	streams plain -url http://127.0.0.1:18082/v1/chat/completions -rate 500 -connections 32 -duration 10s

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

type plainReport struct {
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	FirstError  string  `json:"firstError,omitempty"`
	LatencyP50  float64 `json:"p50Ms"`
	LatencyP99  float64 `json:"p99Ms"`
	AnswerBytes int     `json:"answerBytes"`
	Connections int     `json:"connections"`
	WallSeconds float64 `json:"wallSeconds"`
}

// sdkHeaders are what the official openai SDK for Node sends with each request (its x-stainless-* telemetry included).
var sdkHeaders = map[string]string{
	"content-type":                "application/json",
	"accept":                      "application/json",
	"user-agent":                  "OpenAI/JS 5.23.2",
	"authorization":               "Bearer sk-bench-0000000000000000000000000000000000000000",
	"x-stainless-lang":            "js",
	"x-stainless-package-version": "5.23.2",
	"x-stainless-os":              "Linux",
	"x-stainless-arch":            "x64",
	"x-stainless-runtime":         "node",
	"x-stainless-runtime-version": "v24.11.0",
	"x-stainless-retry-count":     "0",
	"x-stainless-timeout":         "600",
}

func plain(args []string) {
	fs := flag.NewFlagSet("plain", flag.ExitOnError)
	url := fs.String("url", "", "the chat completions URL")
	rate := fs.Int("rate", 500, "requests per second")
	connections := fs.Int("connections", 32, "keep-alive connections, each its own client")
	duration := fs.Duration("duration", 10*time.Second, "how long to send")
	burst := fs.Int("burst", 1, "requests scheduled at once (every burst/rate seconds)")
	bodyFile := fs.String("body", "", "the request body (a file); default: a chat request of about 1.5 KB")
	var headers headerList
	fs.Var(&headers, "header", "an extra request header, name:value (repeatable)")
	fs.Parse(args)
	body := []byte(defaultRequest)
	if *bodyFile != "" {
		b, err := os.ReadFile(*bodyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		body = b
	}
	type job struct{ due time.Time }
	jobs := make(chan job, *rate*int(duration.Seconds()+1))
	var mu sync.Mutex
	latencies := make([]float64, 0, *rate*int(duration.Seconds()+1))
	report := plainReport{Connections: *connections}
	var wg sync.WaitGroup
	for c := 0; c < *connections; c++ {
		wg.Add(1)
		client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true}, Timeout: 30 * time.Second}
		go func() {
			defer wg.Done()
			for j := range jobs {
				n, err := plainOnce(client, *url, body, headers)
				mu.Lock()
				report.Requests++
				if err != nil {
					report.Errors++
					if report.FirstError == "" {
						report.FirstError = err.Error()
					}
				} else {
					report.AnswerBytes = n
					latencies = append(latencies, float64(time.Since(j.due))/1e6)
				}
				mu.Unlock()
			}
		}()
	}
	started := time.Now()
	total := int(float64(*rate) * duration.Seconds())
	every := time.Duration(float64(time.Second) * float64(*burst) / float64(*rate))
	for sent := 0; sent < total; {
		due := started.Add(time.Duration(sent / *burst) * every)
		time.Sleep(time.Until(due))
		for i := 0; i < *burst && sent < total; i++ {
			jobs <- job{due}
			sent++
		}
	}
	close(jobs)
	wg.Wait()
	report.WallSeconds = time.Since(started).Seconds()
	sort.Float64s(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[int(p*float64(len(latencies)-1))]
	}
	report.LatencyP50, report.LatencyP99 = pct(0.5), pct(0.99)
	out, _ := json.Marshal(report)
	fmt.Println(string(out))
}

// request prints the request plain sends, as JSON {"body": ..., "headers": {...}}, for the other harness to send the same.
func request() {
	out, _ := json.Marshal(map[string]any{"body": defaultRequest, "headers": sdkHeaders})
	fmt.Println(string(out))
}

// headerList is a repeatable -header flag.
type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

func plainOnce(client *http.Client, url string, body []byte, headers headerList) (int, error) {
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	for k, v := range sdkHeaders {
		req.Header.Set(k, v)
	}
	for _, header := range headers {
		if i := strings.IndexByte(header, ':'); i > 0 {
			req.Header.Set(header[:i], header[i+1:])
		}
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, err
	}
	if res.StatusCode != 200 || !bytes.Contains(answer, []byte(`"usage"`)) {
		return 0, fmt.Errorf("status %d: %.200s", res.StatusCode, answer)
	}
	return len(answer), nil
}

// defaultRequest is a chat request as an app sends one: a system prompt, a short history and the question (about 1.5 KB).
var defaultRequest = `{"model":"bench-model","max_tokens":512,"temperature":0.2,"messages":[` +
	`{"role":"system","content":"You are the support assistant of an online shop. Answer in the customer's language, briefly and politely. Use the order data you are given; never invent order numbers, prices or delivery dates. If the customer asks for a refund, explain the 30-day return policy and offer to open a return. If you cannot help, say so and offer to hand over to a person. Do not discuss other customers' orders. Keep answers under 200 words unless the customer asks for detail."},` +
	`{"role":"user","content":"Hi, I ordered a pair of running shoes last Tuesday (order 48213) and the tracking page has said 'label created' for four days. Can you tell me what is going on?"},` +
	`{"role":"assistant","content":"I'm sorry about the wait. Order 48213 was packed on Wednesday, but the carrier has not scanned the parcel yet. That usually means it is waiting for pickup at our warehouse. I have flagged it for the warehouse team."},` +
	`{"role":"user","content":"Thanks. If it does not arrive by Friday, can I cancel it and get my money back, or do I have to wait for it and send it back? Also, do you have the same shoes in a half size up?"}]}`
