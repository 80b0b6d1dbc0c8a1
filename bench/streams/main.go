// Command streams is bench/'s model server and LLM-shaped workload: an
// upstream that answers a streaming chat completion with a server-sent-event
// stream of chunks at random intervals, shaped as OpenAI writes them (and any
// other request with one fixed chat completion of about 2 KB at once, with
// OpenAI's answer headers), a load generator that holds N such streams open
// through a proxy and measures each event's delay from the upstream's write to
// its arrival, and an open-loop load generator for plain requests as an SDK
// sends them (plain.go). All are Go so that they take little of the CPU the
// proxies under test are measured on.
//
//	streams upstream -listen 127.0.0.1:18090 -events 60 -min 20ms -max 50ms
//	streams load -url http://127.0.0.1:18001/primary/v1/chat/completions -streams 500 -ramp 1s
//	streams plain -url http://127.0.0.1:18001/primary/v1/chat/completions -rate 500 -connections 32
//	streams request   (the request plain sends, for another load generator)
//
// Each event's content is "t<unix nanoseconds> ", stamped as it is written;
// load prints one JSON object with the delay percentiles and the streams that
// did not finish whole.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: streams upstream|load|plain|request [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "upstream":
		upstream(os.Args[2:])
	case "load":
		load(os.Args[2:])
	case "plain":
		plain(os.Args[2:])
	case "request":
		request()
	default:
		fmt.Fprintln(os.Stderr, "usage: streams upstream|load|plain|request [flags]")
		os.Exit(2)
	}
}

func upstream(args []string) {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:18090", "address to serve on")
	events := fs.Int("events", 60, "content events per stream")
	min := fs.Duration("min", 20*time.Millisecond, "shortest gap between events")
	max := fs.Duration("max", 50*time.Millisecond, "longest gap between events")
	fs.Parse(args)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		for k, v := range answerHeaders {
			w.Header().Set(k, v)
		}
		if !bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("content-type", "application/json")
			w.Write(completion)
			return
		}
		flusher := w.(http.Flusher)
		w.Header().Set("content-type", "text/event-stream; charset=utf-8")
		w.Header().Set("cache-control", "no-cache")
		w.WriteHeader(200)
		flusher.Flush()
		rng := rand.New(rand.NewSource(time.Now().UnixNano()))
		// Every chunk carries usage: null when the request asked for usage (OpenAI's include_usage), and an obfuscation field.
		usage := bytes.Contains(body, []byte(`"include_usage":true`))
		fmt.Fprint(w, chunk(`{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}`, usage, rng))
		flusher.Flush()
		for i := 0; i < *events; i++ {
			time.Sleep(*min + time.Duration(rng.Int63n(int64(*max-*min)+1)))
			fmt.Fprint(w, chunk(fmt.Sprintf(`{"index":0,"delta":{"content":"t%d "},"logprobs":null,"finish_reason":null}`, time.Now().UnixNano()), usage, rng))
			flusher.Flush()
			if r.Context().Err() != nil {
				return
			}
		}
		fmt.Fprint(w, chunk(`{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}`, usage, rng))
		if usage {
			fmt.Fprintf(w, "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":1733580000,\"model\":\"bench-model\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_bench\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":%d,\"total_tokens\":%d,\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}},\"obfuscation\":\"%s\"}\n\n", streamID, *events, *events+9, obfuscation(rng))
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
		flusher.Flush()
	})
	server := &http.Server{Addr: *listen, ReadHeaderTimeout: 10 * time.Second}
	if err := server.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

const streamID = "chatcmpl-CQ3d1Yb7xWq2bench"

// chunk is one chat.completion.chunk event as OpenAI writes it: created, service_tier, system_fingerprint,
// logprobs: null, usage: null on every chunk when usage was asked for, and a few random obfuscation characters.
func chunk(choice string, usage bool, rng *rand.Rand) string {
	nullUsage := ""
	if usage {
		nullUsage = `,"usage":null`
	}
	return fmt.Sprintf(`data: {"id":"%s","object":"chat.completion.chunk","created":1733580000,"model":"bench-model","service_tier":"default","system_fingerprint":"fp_bench","choices":[%s]%s,"obfuscation":"%s"}`+"\n\n", streamID, choice, nullUsage, obfuscation(rng))
}

// obfuscation is the padding OpenAI adds to each streamed chunk (stream_options.include_obfuscation, on by default).
func obfuscation(rng *rand.Rand) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 2+rng.Intn(12))
	for i := range b {
		b[i] = letters[rng.Intn(len(letters))]
	}
	return string(b)
}

// completion is a plain answer of the size a chat answer has (about 2 KB, usage included), as OpenAI shapes it.
var completion = []byte(`{"id":"chatcmpl-bench","object":"chat.completion","created":1733580000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"` +
	strings.Repeat("I am sorry your parcel has not moved yet. Order 48213 is waiting for pickup at our warehouse, and I have asked the team to hand it to the carrier today. ", 11) +
	`","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":412,"completion_tokens":396,"total_tokens":808,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_bench"}`)

// answerHeaders are the headers OpenAI's API answers with (rate limits, request id, processing time), on every answer.
var answerHeaders = map[string]string{
	"openai-organization":            "org-bench",
	"openai-processing-ms":           "412",
	"openai-version":                 "2020-10-01",
	"x-request-id":                   "req_0123456789abcdef0123456789abcdef",
	"x-ratelimit-limit-requests":     "10000",
	"x-ratelimit-limit-tokens":       "30000000",
	"x-ratelimit-remaining-requests": "9999",
	"x-ratelimit-remaining-tokens":   "29999000",
	"x-ratelimit-reset-requests":     "6ms",
	"x-ratelimit-reset-tokens":       "2ms",
	"strict-transport-security":      "max-age=31536000; includeSubDomains; preload",
	"x-content-type-options":         "nosniff",
}

type report struct {
	Streams     int     `json:"streams"`
	Completed   int     `json:"completed"`
	Dropped     int     `json:"dropped"`
	Events      int     `json:"events"`
	DelayP50Ms  float64 `json:"delayP50Ms"`
	DelayP99Ms  float64 `json:"delayP99Ms"`
	DelayMaxMs  float64 `json:"delayMaxMs"`
	FirstError  string  `json:"firstError,omitempty"`
	WallSeconds float64 `json:"wallSeconds"`
}

func load(args []string) {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	url := fs.String("url", "", "the proxy's chat completions URL")
	streams := fs.Int("streams", 500, "streams held open at once")
	events := fs.Int("events", 60, "content events each stream must bring")
	ramp := fs.Duration("ramp", time.Second, "the streams' starts are spread over this long")
	header := fs.String("header", "", "one extra request header, name:value")
	fs.Parse(args)
	body := []byte(`{"model":"bench-model","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"Count slowly."}]}`)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *streams, MaxConnsPerHost: 0, DisableCompression: true}, Timeout: 60 * time.Second}

	var mu sync.Mutex
	delays := make([]float64, 0, *streams**events)
	completed := 0
	firstError := ""
	var wg sync.WaitGroup
	started := time.Now()
	for s := 0; s < *streams; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			time.Sleep(time.Duration(int64(*ramp) * int64(s) / int64(*streams)))
			mine, whole, err := one(client, *url, body, *header, *events)
			mu.Lock()
			defer mu.Unlock()
			delays = append(delays, mine...)
			if whole {
				completed++
			} else if firstError == "" && err != nil {
				firstError = err.Error()
			}
		}(s)
	}
	wg.Wait()
	sort.Float64s(delays)
	pct := func(p float64) float64 {
		if len(delays) == 0 {
			return 0
		}
		return delays[int(p*float64(len(delays)-1))]
	}
	out, _ := json.Marshal(report{*streams, completed, *streams - completed, len(delays), pct(0.5), pct(0.99), pct(1), firstError, time.Since(started).Seconds()})
	fmt.Println(string(out))
}

// one runs one stream; it returns each event's delay in ms and whether the stream came whole ([DONE] after all its events).
func one(client *http.Client, url string, body []byte, header string, events int) ([]float64, bool, error) {
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("content-type", "application/json")
	if i := bytes.IndexByte([]byte(header), ':'); i > 0 {
		req.Header.Set(header[:i], header[i+1:])
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return nil, false, fmt.Errorf("status %d", res.StatusCode)
	}
	delays := make([]float64, 0, events)
	scanner := bufio.NewScanner(res.Body)
	marker := []byte(`"content":"t`)
	for scanner.Scan() {
		line := scanner.Bytes()
		if bytes.Equal(line, []byte("data: [DONE]")) {
			return delays, len(delays) == events, nil
		}
		i := bytes.Index(line, marker)
		if i < 0 {
			continue
		}
		rest := line[i+len(marker):]
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			continue
		}
		sent, err := strconv.ParseInt(string(rest[:end]), 10, 64)
		if err != nil {
			continue
		}
		delays = append(delays, float64(time.Now().UnixNano()-sent)/1e6)
	}
	if err := scanner.Err(); err != nil {
		return delays, false, err
	}
	return delays, false, fmt.Errorf("stream ended after %d events without [DONE]", len(delays))
}
