package mcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	alkhttp "github.com/alknet/alknet/http"
	"github.com/alknet/alknet/http/mcp"
)

// A node's HTTP surface with the MCP projection at /mcp; an MCP client lists the four
// tools and calls an operation through the call tool.
func ExampleMount() {
	reg := call.NewRegistry()
	err := reg.Register(call.Registration{
		Spec: call.NewSpec("demo/greet", call.Query),
		Once: func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			var p struct{ Name string }
			_ = json.Unmarshal(in, &p)
			return json.Marshal(map[string]string{"greeting": "hello " + p.Name})
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	h, err := alkhttp.New(alkhttp.Config{Registry: reg, MCP: mcp.Mount(nil)})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h) // or register h with a core.Registry on alknet/http, h2, http/1.1
	defer srv.Close()

	ctx := context.Background()
	client := sdk.NewClient(&sdk.Implementation{Name: "example", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: srv.URL + alkhttp.MCPPath, HTTPClient: srv.Client()}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer cs.Close()
	fmt.Println(cs.InitializeResult().ServerInfo.Name)

	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range tools.Tools {
		fmt.Println("tool", t.Name)
	}

	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "call", Arguments: map[string]any{
		"operation": "demo/greet",
		"input":     map[string]any{"name": "mcp"},
	}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.IsError, res.Content[0].(*sdk.TextContent).Text)
	// Output:
	// alknet-to-mcp
	// tool batch
	// tool call
	// tool schema
	// tool search
	// false {"greeting":"hello mcp"}
}

// NewHandler mounts the projection of a Gateway in an embedder's own mux.
func ExampleNewHandler() {
	reg := call.NewRegistry()
	mux := http.NewServeMux()
	// Wrap it in alkhttp.BearerAuth or your own authentication as needed: the tools
	// read the caller's token from each request's Authorization header.
	mux.Handle("/mcp", mcp.NewHandler(&alkhttp.Gateway{Registry: reg}, &mcp.ServerOptions{
		Instructions:  "Operations of the example node: search first.",
		MaxBatchItems: 10,
	}))
	fmt.Println("mounted")
	// Output: mounted
}

// Import the tools of an MCP server as operations, and call one with the credential
// the assembly layer put in its capabilities.
func ExampleNewImporter() {
	// An MCP server with one tool.
	upstream := sdk.NewServer(&sdk.Implementation{Name: "weather", Version: "1"}, nil)
	upstream.AddTool(&sdk.Tool{
		Name:        "forecast",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`),
	}, func(_ context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		var in struct{ City string }
		_ = json.Unmarshal(req.Params.Arguments, &in)
		return &sdk.CallToolResult{StructuredContent: map[string]string{
			"city": in.City, "sky": "clear", "auth": req.Extra.Header.Get("Authorization"),
		}}, nil
	})
	srv := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return upstream }, nil))
	defer srv.Close()

	imp, err := mcp.NewImporter(mcp.ImportConfig{
		Namespace:  "weather",
		Endpoint:   srv.URL,
		Credential: []byte("session-token"), // for the importer's own session
		Expose:     true,                    // callable from the wire, not only by composition
	})
	if err != nil {
		log.Fatal(err)
	}
	defer imp.Close() // before srv.Close: ends the session

	ctx := context.Background()
	regs, err := imp.Import(ctx)
	if err != nil {
		log.Fatal(err)
	}
	reg := call.NewRegistry()
	for _, r := range regs {
		// The assembly layer hands the per-call credential to the operation.
		r.Caps = core.NewCapabilities(map[string][]byte{"api_key:weather": []byte("call-token")})
		if err := reg.Register(r); err != nil {
			log.Fatal(err)
		}
		fmt.Println(r.Spec.Name, r.Spec.Type, r.Spec.ErrorSchemas[0].Code)
	}

	r, _ := reg.Lookup("weather/forecast")
	out, cerr := reg.Invoke(ctx, "weather/forecast", json.RawMessage(`{"city":"Oslo"}`), call.NewRootContext("", nil, nil, r, nil, nil))
	if cerr != nil {
		log.Fatal(cerr)
	}
	fmt.Println(string(out))
	// Output:
	// weather/forecast mutation MCP_TOOL_ERROR
	// {"auth":"Bearer call-token","city":"Oslo","sky":"clear"}
}
