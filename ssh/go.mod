module github.com/alknet/alknet/ssh

go 1.26.0

replace github.com/alknet/alknet/core => ../core

require (
	github.com/alknet/alknet/core v0.0.0-00010101000000-000000000000
	github.com/quic-go/quic-go v0.65.0
	go.uber.org/goleak v1.3.0
	golang.org/x/crypto v0.58.0
)

require (
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
