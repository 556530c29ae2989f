// A kube-scheduler extender that does nothing: filter passes every node, prioritize scores every node 0.
// bench_scheduler.py runs it to measure what the extender protocol itself (two HTTP calls per pod,
// JSON both ways) costs kube-scheduler, apart from any extender's work or language.
package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
)

type extenderArgs struct {
	NodeNames *[]string `json:"NodeNames"`
}

type filterResult struct {
	NodeNames   *[]string         `json:"NodeNames"`
	FailedNodes map[string]string `json:"FailedNodes"`
	Error       string            `json:"Error"`
}

type hostPriority struct {
	Host  string `json:"Host"`
	Score int64  `json:"Score"`
}

func decode(w http.ResponseWriter, r *http.Request) (extenderArgs, bool) {
	var args extenderArgs
	if err := json.NewDecoder(r.Body).Decode(&args); err != nil || args.NodeNames == nil {
		http.Error(w, "NodeNames is required", http.StatusBadRequest)
		return args, false
	}
	return args, true
}

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: noop_extender HOST:PORT")
	}
	http.HandleFunc("/filter", func(w http.ResponseWriter, r *http.Request) {
		if args, ok := decode(w, r); ok {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(filterResult{NodeNames: args.NodeNames, FailedNodes: map[string]string{}})
		}
	})
	http.HandleFunc("/prioritize", func(w http.ResponseWriter, r *http.Request) {
		if args, ok := decode(w, r); ok {
			scores := make([]hostPriority, 0, len(*args.NodeNames))
			for _, node := range *args.NodeNames {
				scores = append(scores, hostPriority{Host: node})
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(scores)
		}
	})
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	log.Fatal(http.ListenAndServe(os.Args[1], nil))
}
