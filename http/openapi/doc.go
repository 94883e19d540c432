// Package openapi imports external HTTP APIs into an Alknet call registry: the
// from_openapi importer turns every operation of an OpenAPI 3 document into a
// forwarding [call.Registration], and the from_jsonschema importer does the same for
// one endpoint whose [call.OperationSpec] the caller writes.
//
// # Documents
//
// [Parse] reads JSON first and falls back to YAML, so a JSON document never meets
// YAML's type resolution; [ParseJSON] and [ParseYAML] read one syntax only. Every
// parse or reference error wraps [ErrSchemaParse] (most are a [*ParseError] carrying
// the JSON pointer of the offending value). [Limits] bound the document size, the
// number of operations, the depth of $ref resolution and, when forwarding, the
// upstream response size and SSE line length.
//
// YAML is read with go.yaml.in/yaml/v3, which follows YAML 1.2's core schema: yes,
// no, on and off are strings, true and false are booleans. Timestamps and binary
// scalars are kept as the strings they are written as. A number keeps the text it is
// written in when that text is a JSON number (1.0 stays 1.0), and is converted
// otherwise (0x1F becomes 31); .inf and .nan are refused. A mapping key that is a
// number or a boolean (an unquoted 200: response key) becomes the string it is
// written as; a null or collection key is an error, and so are two keys that become
// the same string. Aliases and merge keys (<<) are expanded, and the expanded
// document must fit in MaxDocumentSize.
//
// # References
//
// Only local references ("#/components/schemas/Pet", RFC 6901 with ~0, ~1 and
// percent-decoding) are followed; any other "$ref" is an error, as is one that does
// not resolve. Sibling keys of a "$ref" are ignored (OpenAPI 3.0). A chain of
// references to a parameter, request body, response or path item may be at most
// MaxRefDepth long and must not loop. Inside a schema, references are replaced by
// their targets, at most MaxRefDepth nested, except that a reference back to a
// schema already being expanded (a tree node whose children are nodes) becomes a
// "$ref" into a "$defs" section at the root of the produced schema, so that
// recursive schemas stay finite and valid. When inlining would make a schema large
// (about 1 MiB of JSON: a schema referred to from many places, or referring to the
// next level twice at each level) it is produced instead with every referenced
// schema in "$defs" once; a produced schema must fit in MaxDocumentSize.
// Produced schemas are re-rooted: "$id" and "$schema" inside them are dropped, and
// two OpenAPI 3.0 forms that JSON Schema 2020-12 rejects or reads differently are
// rewritten: a boolean exclusiveMinimum or exclusiveMaximum becomes the number
// form, and nullable: true adds "null" to a single type (and to an enum).
//
// # Operations
//
// [Import] produces one registration per (path, method) for get, post, put, patch,
// delete, head and options (lower-case keys, as OpenAPI writes them), named
// "<namespace>/<operationId>", or "<namespace>/<method>_<segments>" without an
// operationId (GET /users/{id}/posts is "get_users_posts"; a path of templates only
// is "get_root"); a segment holding a "{" counts as a template. A name that
// call.ValidateName rejects (an operationId with a space, say) is an error naming
// the operation, not silently rewritten; so is a name produced twice.
//
// The type is Subscription when the 200 (else 201) response has text/event-stream
// content, otherwise Query for GET and Mutation for the rest. The input schema is an
// object with one property per path, query and header parameter (path-level
// parameters included, overridden by operation-level ones with the same name and
// location; path parameters are always required), plus "body", the application/json
// request body schema, always required when present. Cookie parameters, and header
// parameters named Accept, Content-Type or Authorization, are left out; when two
// parameters share a name the path one wins over the query one over the header one,
// and "body" wins over a parameter named body. The output schema is the
// application/json schema of that 200/201 response, else its text/event-stream
// schema, else {}. Every non-2xx numeric response key (100 to 599) declares the
// error code "HTTP_<n>"; "default" and ranges such as "4XX" are skipped. HTTP_429
// and HTTP_503 are always declared as well, because the forwarder reports them as
// retryable with their Retry-After, which the registry would otherwise turn into
// INTERNAL.
//
// Imported operations are Internal unless [ServiceConfig.Expose] is set, have the
// default (empty) access rule, provenance from_openapi, no authority, no scoped
// environment and no capabilities. The forwarder reads the credential with
// core.Capabilities.Get(namespace), that is under "api_key:<namespace>" or
// "http_token:<namespace>", from the call's OpContext.Caps. For a root call (an
// exposed operation called from the wire) those are the registration's Caps, which
// the assembly layer sets before registering; a composed call carries the Caps of
// the call that composes it (call.NewChildContext), so for the default Internal
// operations the composing operation must hold the credential.
//
// # Forwarding
//
// A call is forwarded to the upstream: each top-level input field named by a
// "{field}" of the path template is substituted there (path-escaped); "body" is the
// JSON request body; header parameters are sent as headers; every other field is a
// query parameter (an array repeats the key, an object is sent as JSON text, null is
// left out). The URL is BaseURL joined with the path; a BaseURL without a trailing
// slash gets one, so "https://h/api/v3" and "https://h/api/v3/" both keep "/api/v3".
// Authentication comes from the capability of the namespace as [ServiceConfig.Auth]
// says; without a credential no auth header is sent. The response becomes the
// output: JSON for application/json, a string for text/*, a base64 string for
// anything else (the call protocol's convention for bytes), null for an empty body.
// A non-2xx status becomes the CallError "HTTP_<n>", retryable for 429 and 503.
// Subscriptions read the upstream's server-sent events and emit one item per data
// event. Nothing is logged; URLs and credentials never appear in errors.
package openapi
