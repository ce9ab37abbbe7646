// Command loadgen drives the DLR ingress with signed, unique webhooks over keep-alive
// connections and prints one JSON line of results. Standard library only, so it builds
// offline; used by bench/ingress.py (a benchmark, never a test).
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Mode     string         `json:"mode"`
	Requests int            `json:"requests"`
	Errors   int            `json:"errors"`
	Seconds  float64        `json:"seconds"`
	RPS      float64        `json:"rps"`
	P50ms    float64        `json:"p50_ms"`
	P99ms    float64        `json:"p99_ms"`
	Status   map[string]int `json:"status"`
}

var seq atomic.Int64

func build(mode, target, secret string) (*http.Request, error) {
	n := seq.Add(1)
	switch mode {
	case "generic":
		body := fmt.Sprintf(`{"message_id":"bench-%d-%d","to":"+14155550100","from":"ACME","status":"delivered","provider_status_code":"0","error":null,"timestamp":"2025-08-12T10:15:00Z"}`, os.Getpid(), n)
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(ts + "." + body))
		req, err := http.NewRequest("POST", target, bytes.NewReader([]byte(body)))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Webhook-Timestamp", ts)
		req.Header.Set("X-Webhook-Signature", "v1="+hex.EncodeToString(mac.Sum(nil)))
		return req, nil
	case "twilio":
		// Unique across runs too (the pid), or a rerun would replay the previous run's callbacks.
		sid := fmt.Sprintf("SM%08x%024d", os.Getpid(), n)
		params := map[string]string{
			"AccountSid": "AC00000000000000000000000000000000", "ApiVersion": "2010-04-01",
			"From": "+15017122661", "To": "+15558675310", "MessageSid": sid, "SmsSid": sid,
			"MessageStatus": "delivered", "SmsStatus": "delivered",
		}
		keys := make([]string, 0, len(params))
		form := url.Values{}
		for k, v := range params {
			keys = append(keys, k)
			form.Set(k, v)
		}
		sort.Strings(keys)
		signed := target
		for _, k := range keys {
			signed += k + params[k]
		}
		mac := hmac.New(sha1.New, []byte(secret))
		mac.Write([]byte(signed))
		req, err := http.NewRequest("POST", target, bytes.NewReader([]byte(form.Encode())))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		return req, nil
	case "api": // a registration for the sender's API (secret = bearer token)
		body := fmt.Sprintf(`{"message_id":"generic:bench-%d-%d","recipient":"+14155550100","sender":"ACME","campaign":"order-confirmation","client_ref":"order-%d","submitted_at":"2025-08-12T10:15:00Z","consent":{"source":"checkout","obtained_at":"2025-08-01T09:00:00Z"}}`, os.Getpid(), n, n)
		req, err := http.NewRequest("POST", target, bytes.NewReader([]byte(body)))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+secret)
		return req, nil
	default: // bare
		body := fmt.Sprintf(`{"message_id":"bench-%d","status":"delivered"}`, n)
		req, err := http.NewRequest("POST", target, bytes.NewReader([]byte(body)))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		return req, nil
	}
}

func main() {
	target := flag.String("url", "http://127.0.0.1:8080/webhooks/generic", "target URL")
	mode := flag.String("mode", "generic", "generic | twilio | api | bare")
	secret := flag.String("secret", "", "signing secret")
	conns := flag.Int("c", 64, "connections")
	duration := flag.Duration("d", 20*time.Second, "duration")
	rate := flag.Float64("rate", 0, "total requests per second across all connections (0 = as fast as possible)")
	flag.Parse()
	var ticks <-chan time.Time
	if *rate > 0 {
		ticker := time.NewTicker(time.Duration(float64(time.Second) / *rate))
		defer ticker.Stop()
		ticks = ticker.C
	}

	transport := &http.Transport{MaxIdleConns: *conns, MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	deadline := time.Now().Add(*duration)
	var mu sync.Mutex
	var latencies []float64
	status := map[string]int{}
	errors := 0
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]float64, 0, 4096)
			localStatus := map[string]int{}
			localErrors := 0
			for time.Now().Before(deadline) {
				if ticks != nil {
					<-ticks
				}
				req, err := build(*mode, *target, *secret)
				if err != nil {
					localErrors++
					continue
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					localErrors++
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				local = append(local, float64(time.Since(t0).Microseconds())/1000.0)
				localStatus[strconv.Itoa(resp.StatusCode)]++
			}
			mu.Lock()
			latencies = append(latencies, local...)
			for k, v := range localStatus {
				status[k] += v
			}
			errors += localErrors
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	sort.Float64s(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[int(p*float64(len(latencies)-1))]
	}
	out := result{Mode: *mode, Requests: len(latencies), Errors: errors, Seconds: elapsed,
		RPS: float64(len(latencies)) / elapsed, P50ms: pct(0.50), P99ms: pct(0.99), Status: status}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		os.Exit(1)
	}
}
