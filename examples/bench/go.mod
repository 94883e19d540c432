module github.com/alknet/alknet/examples/bench

go 1.26.0

replace (
	github.com/alknet/alknet/call => ../../call
	github.com/alknet/alknet/core => ../../core
	github.com/alknet/alknet/dns => ../../dns
	github.com/alknet/alknet/examples => ..
	github.com/alknet/alknet/git => ../../git
	github.com/alknet/alknet/http => ../../http
	github.com/alknet/alknet/msg => ../../msg
	github.com/alknet/alknet/sftp => ../../sftp
	github.com/alknet/alknet/ssh => ../../ssh
	github.com/alknet/alknet/vault => ../../vault
)

require (
	github.com/alknet/alknet/call v0.0.0-00010101000000-000000000000
	github.com/alknet/alknet/core v0.0.0-00010101000000-000000000000
	github.com/alknet/alknet/dns v0.0.0-00010101000000-000000000000
	github.com/alknet/alknet/examples v0.0.0-00010101000000-000000000000
	github.com/alknet/alknet/git v0.0.0-00010101000000-000000000000
	github.com/alknet/alknet/http v0.0.0-00010101000000-000000000000
	github.com/alknet/alknet/msg v0.0.0-00010101000000-000000000000
	github.com/alknet/alknet/sftp v0.0.0-00010101000000-000000000000
	github.com/alknet/alknet/ssh v0.0.0-00010101000000-000000000000
	github.com/alknet/alknet/vault v0.0.0-00010101000000-000000000000
	github.com/coder/websocket v1.8.15
	github.com/cosmos/go-bip39 v1.0.0
	github.com/jackc/pgx/v5 v5.13.0
	github.com/miekg/dns v1.1.73
	github.com/modelcontextprotocol/go-sdk v1.8.0
	github.com/pkg/sftp v1.13.12
	github.com/quic-go/quic-go v0.65.0
	go.uber.org/goleak v1.3.0
	golang.org/x/crypto v0.58.0
	google.golang.org/grpc v1.85.0
)

require (
	github.com/ProtonMail/go-crypto v1.1.6 // indirect
	github.com/cloudflare/circl v1.6.3 // indirect
	github.com/cyphar/filepath-securejoin v0.6.1 // indirect
	github.com/emirpasic/gods v1.18.1 // indirect
	github.com/go-git/gcfg v1.5.1-0.20230307220236-3a3c6141e376 // indirect
	github.com/go-git/go-billy/v5 v5.9.2 // indirect
	github.com/go-git/go-git/v5 v5.19.3 // indirect
	github.com/google/jsonschema-go v0.4.3 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	github.com/jbenet/go-context v0.0.0-20150711004518-d14ea06fba99 // indirect
	github.com/kr/fs v0.1.0 // indirect
	github.com/pjbgf/sha1cd v0.7.0 // indirect
	github.com/quic-go/qpack v0.6.0 // indirect
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3 // indirect
	github.com/segmentio/asm v1.1.3 // indirect
	github.com/segmentio/encoding v0.5.4 // indirect
	github.com/sergi/go-diff v1.3.2-0.20230802210424-5b0b94c5c0d3 // indirect
	github.com/yosida95/uritemplate/v3 v3.0.2 // indirect
	go.etcd.io/bbolt v1.5.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/oauth2 v0.37.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	golang.org/x/time v0.15.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
	gopkg.in/warnings.v0 v0.1.2 // indirect
)
