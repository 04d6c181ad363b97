// Command billing is the example service of the quick start: a plain HTTP handler that
// receives the events its jetmesh sidecar delivers (CloudEvents HTTP binary mode: ce-*
// headers, body = data). It knows nothing of NATS or jetmesh.
//
//	go run ./examples/billing --listen 127.0.0.1:8081
//	jetmesh sidecar --service billing --handler http://127.0.0.1:8081
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// order is the part of an orders.created event billing reads.
type order struct {
	OrderID string `json:"orderId"`
	Total   struct {
		Cents    int64  `json:"cents"`
		Currency string `json:"currency"`
	} `json:"total"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve on")
	flag.Parse()
	http.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	http.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var o order
		if err := json.NewDecoder(r.Body).Decode(&o); err != nil || o.OrderID == "" {
			// A 4xx other than 404/408/409/425/429 tells the sidecar "never retry": the
			// event goes to the DLQ with this text.
			http.Error(w, "not an order", http.StatusUnprocessableEntity)
			return
		}
		fmt.Printf("billing: %s %s from %s: order %s, %d.%02d %s (traceparent %s)\n",
			r.Header.Get("Ce-Type"), r.Header.Get("Ce-Id"), r.Header.Get("Ce-Source"),
			o.OrderID, o.Total.Cents/100, o.Total.Cents%100, o.Total.Currency, r.Header.Get("Traceparent"))
		w.WriteHeader(http.StatusNoContent) // 2xx: delivered
	})
	srv := &http.Server{Addr: *listen, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background()) // finish the request in hand, then exit 0
	}()
	log.Printf("billing listening on %s", *listen)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
