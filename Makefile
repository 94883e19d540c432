# The whole test suite: no large tracked file, formatting, vet, tidy go.mod files and the
# race-enabled tests of every module in go.work (fuzz seed corpora run as ordinary tests).
MODULES := $(shell go list -m -f '{{.Dir}}')

# quic-go warns when the kernel caps UDP buffers below 7 MiB; tests do not need them.
export QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING := 1

.PHONY: test large fmt vet tidy gotest
test: large fmt vet tidy gotest

# No tracked file may exceed 1 MiB: a built binary committed by mistake fails here (build
# outputs belong in .gitignore). Outside a git checkout there is nothing to check.
LARGE_LIMIT := 1048576
large:
	@if ! git rev-parse --git-dir >/dev/null 2>&1; then echo "large: not a git checkout, tracked file sizes not checked"; exit 0; fi; \
	out="$$(git ls-files -z | xargs -0 -r stat -c '%s %n' 2>/dev/null | awk '$$1 > $(LARGE_LIMIT)')"; \
	if [ -n "$$out" ]; then echo "tracked files over $(LARGE_LIMIT) bytes (size, path):"; echo "$$out"; exit 1; fi

fmt:
	@out="$$(gofmt -l $(MODULES))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	@for m in $(MODULES); do (cd $$m && go vet ./...) || exit 1; done

tidy:
	@for m in $(MODULES); do (cd $$m && go mod tidy -diff) || { echo "go.mod of $$m is not tidy"; exit 1; }; done

gotest:
	@for m in $(MODULES); do (cd $$m && go test -race -count=1 -timeout 20m ./...) || exit 1; done
