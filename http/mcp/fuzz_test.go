package mcp

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// FuzzConvertResult feeds untrusted tools/call result JSON, as a server sends it,
// through the SDK's decoding and convertResult: it never panics, and gives exactly
// one of a valid JSON output and an MCP_TOOL_ERROR whose details are a JSON array of
// content blocks and whose message is short valid UTF-8.
func FuzzConvertResult(f *testing.F) {
	for _, seed := range []string{
		`{"content":[{"type":"text","text":"hello"}]}`,
		`{"content":[{"type":"text","text":"{\"a\":1}"}],"structuredContent":{"a":1}}`,
		`{"content":[],"structuredContent":[1,2,3]}`,
		`{"content":[],"structuredContent":"just a string"}`,
		`{"content":[{"type":"text","text":"boom"}],"isError":true}`,
		`{"content":[{"type":"image","data":"AQID","mimeType":"image/png"},{"type":"audio","data":"","mimeType":"audio/wav"}]}`,
		`{"content":[{"type":"resource","resource":{"uri":"file:///a","text":"x"}},{"type":"resource_link","uri":"file:///b","name":"b"}]}`,
		`{"isError":true,"structuredContent":{"x":1}}`,
		`{"content":null}`,
		`{}`,
		`{"content":[{"type":"text","text":"` + string(bytes.Repeat([]byte("é"), 400)) + `"}],"isError":true}`,
		`{"content":[{"type":"unknown"}]}`,
		`{"structuredContent":1e400}`,
		`{"structuredContent":12345678901234567890}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var res sdk.CallToolResult
		if err := json.Unmarshal(data, &res); err != nil {
			return // the SDK refuses it before we see it
		}
		out, cerr := convertResult(&res)
		switch {
		case out == nil && cerr == nil, out != nil && cerr != nil:
			t.Fatalf("output %s and error %v", out, cerr)
		case cerr != nil:
			if cerr.Code == ToolErrorCode {
				if !res.IsError || !json.Valid(cerr.Details) || cerr.Details[0] != '[' {
					t.Fatalf("tool error %+v from isError=%v", cerr, res.IsError)
				}
				if !utf8.ValidString(cerr.Message) || len(cerr.Message) > maxErrorMessage+64 {
					t.Fatalf("message %q", cerr.Message)
				}
			}
		default:
			if res.IsError || !json.Valid(out) {
				t.Fatalf("output %q from isError=%v", out, res.IsError)
			}
			if res.StructuredContent == nil && out[0] != '[' {
				t.Fatalf("content blocks output %s", out)
			}
		}
	})
}

// FuzzWrapping: whatever JSON an operation returns or a caller sends, the projection's
// structuredContent and the importer's arguments are JSON objects that keep the value.
func FuzzWrapping(f *testing.F) {
	for _, seed := range []string{`{}`, `{"a":1}`, `[1]`, `"s"`, `1`, `null`, `true`, ` {"a":[]} `, ``} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(bytes.TrimSpace(data)) > 0 && !json.Valid(data) {
			return
		}
		for name, got := range map[string]json.RawMessage{"structured": structured(data), "arguments": toolArguments(data)} {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(got, &m); err != nil || m == nil {
				t.Fatalf("%s(%q) = %q is not an object", name, data, got)
			}
		}
	})
}
