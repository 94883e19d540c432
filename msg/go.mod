module github.com/alknet/alknet/msg

go 1.26.0

replace github.com/alknet/alknet/core => ../core

require github.com/alknet/alknet/core v0.0.0-00010101000000-000000000000
