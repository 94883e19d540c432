// Command linkcheck uses both directions of package mcp so that its symbol table
// shows what importing the package links. TestSDKProcessTransportsNotLinked builds
// it and reads that table; it is never run.
package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/alknet/alknet/call"
	alkhttp "github.com/alknet/alknet/http"
	"github.com/alknet/alknet/http/mcp"
)

func main() {
	reg := call.NewRegistry()
	h, err := alkhttp.New(alkhttp.Config{Registry: reg, MCP: mcp.Mount(nil)})
	if err != nil {
		panic(err)
	}
	direct := mcp.NewHandler(&alkhttp.Gateway{Registry: reg}, &mcp.ServerOptions{})
	imp, err := mcp.NewImporter(mcp.ImportConfig{Namespace: "up", Endpoint: "http://127.0.0.1:1/mcp"})
	if err != nil {
		panic(err)
	}
	defer imp.Close()
	var adapter call.OperationAdapter = imp
	regs, err := adapter.Import(context.Background())
	for _, r := range regs {
		_, _ = r.Once(context.Background(), nil, nil)
	}
	_ = http.ListenAndServe("127.0.0.1:0", h)
	fmt.Println(direct != nil, err)
}
