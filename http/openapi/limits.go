package openapi

// Default limits, used for every [Limits] field that is zero or negative.
const (
	// DefaultMaxDocumentSize is the largest document accepted, in bytes, checked
	// before decoding (8 MiB). It also bounds a YAML document with its aliases
	// expanded, and each produced schema.
	DefaultMaxDocumentSize = 8 << 20
	// DefaultMaxRefDepth is the longest chain of $ref hops to a parameter, request
	// body, response or path item, and the deepest nesting of $ref expansions inside
	// one schema.
	DefaultMaxRefDepth = 32
	// DefaultMaxOperations is the most operations (path and method pairs) a document
	// may hold.
	DefaultMaxOperations = 1024
	// DefaultMaxResponseSize is the most bytes read from one upstream response body
	// (16 MiB); it also bounds the data of one server-sent event.
	DefaultMaxResponseSize = 16 << 20
	// DefaultMaxSSELineSize is the longest line of an upstream event stream, in bytes,
	// without its line ending (1 MiB).
	DefaultMaxSSELineSize = 1 << 20
)

// Limits bounds what the importer and the forwarders accept. The zero value means
// the defaults. The document limits (MaxDocumentSize, MaxRefDepth, MaxOperations)
// are those given to [Parse] and kept with the [Document], which [Import] uses; the
// forwarding limits (MaxResponseSize, MaxSSELineSize) are those of
// [ServiceConfig.Limits].
type Limits struct {
	// MaxDocumentSize is the largest document, in bytes (0: DefaultMaxDocumentSize).
	MaxDocumentSize int
	// MaxRefDepth bounds $ref chains and nesting (0: DefaultMaxRefDepth).
	MaxRefDepth int
	// MaxOperations is the most operations in a document (0: DefaultMaxOperations).
	MaxOperations int
	// MaxResponseSize is the most bytes read from an upstream response body
	// (0: DefaultMaxResponseSize); more is an INTERNAL error.
	MaxResponseSize int
	// MaxSSELineSize is the longest upstream SSE line (0: DefaultMaxSSELineSize);
	// a longer one ends the subscription with an INTERNAL error.
	MaxSSELineSize int
}

// withDefaults returns l with every field that is not positive set to its default.
func (l Limits) withDefaults() Limits {
	if l.MaxDocumentSize <= 0 {
		l.MaxDocumentSize = DefaultMaxDocumentSize
	}
	if l.MaxRefDepth <= 0 {
		l.MaxRefDepth = DefaultMaxRefDepth
	}
	if l.MaxOperations <= 0 {
		l.MaxOperations = DefaultMaxOperations
	}
	if l.MaxResponseSize <= 0 {
		l.MaxResponseSize = DefaultMaxResponseSize
	}
	if l.MaxSSELineSize <= 0 {
		l.MaxSSELineSize = DefaultMaxSSELineSize
	}
	return l
}
