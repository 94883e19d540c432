module github.com/alknet/alknet/examples

go 1.26.0

replace github.com/alknet/alknet/core => ../core
