package http_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"

	"github.com/quic-go/quic-go/http3"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	alkhttp "github.com/alknet/alknet/http"
)

// The HTTP surface on a node: alknet/http on QUIC streams, h2 and http/1.1 on the
// TCP+TLS listener, and HTTP/3 on the QUIC listener, advertised with Alt-Svc once up.
func ExampleHandler_HTTP3() {
	ctx := context.Background()
	h, err := alkhttp.New(alkhttp.Config{Registry: call.NewRegistry()})
	if err != nil {
		log.Fatal(err)
	}
	reg := core.NewRegistry()
	for _, alpn := range []string{alkhttp.ALPN, "h2", "http/1.1"} {
		if err := reg.RegisterAs(alpn, h); err != nil {
			log.Fatal(err)
		}
	}
	if err := reg.Register(h.HTTP3()); err != nil {
		log.Fatal(err)
	}

	key, _ := tlsconf.GenerateKey()
	cert, _ := tlsconf.Certificate(key)
	ep, err := endpoint.New(reg, endpoint.Config{TLS: tlsconf.ServerConfig(cert)})
	if err != nil {
		log.Fatal(err)
	}
	if err := ep.Listen("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer ep.Shutdown(ctx)
	h.AdvertiseHTTP3(ep.QUICAddr().(*net.UDPAddr).Port)

	// quic-go's HTTP/3 client, pinning the node.
	tc, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: tlsconf.Fingerprint(key)})
	if err != nil {
		log.Fatal(err)
	}
	tr := &http3.Transport{TLSClientConfig: tc}
	defer tr.Close()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + ep.QUICAddr().String() + "/healthz")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Proto, resp.StatusCode, string(body))
	// Output: HTTP/3.0 200 ok
}
