# The whole test suite: formatting, vet, tidy go.mod files and the race-enabled tests of
# every module in go.work (fuzz seed corpora run as ordinary tests).
MODULES := $(shell go list -m -f '{{.Dir}}')

# quic-go warns when the kernel caps UDP buffers below 7 MiB; tests do not need them.
export QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING := 1

.PHONY: test fmt vet tidy gotest
test: fmt vet tidy gotest

fmt:
	@out="$$(gofmt -l $(MODULES))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	@for m in $(MODULES); do (cd $$m && go vet ./...) || exit 1; done

tidy:
	@for m in $(MODULES); do (cd $$m && go mod tidy -diff) || { echo "go.mod of $$m is not tidy"; exit 1; }; done

gotest:
	@for m in $(MODULES); do (cd $$m && go test -race -count=1 -timeout 20m ./...) || exit 1; done
