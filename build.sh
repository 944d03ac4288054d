#!/usr/bin/env bash
# steadyws build and checks.
#
#   ./build.sh          build the Go library and dist/steadyws-<ver>-py3-none-<platform>.whl
#   ./build.sh test     everything CI runs: gofmt, go vet, go test -race, the wheel,
#                       a fresh virtualenv with the pinned test dependencies, toxiproxy,
#                       ruff, mypy --strict, and the pytest suite against the installed wheel
#   ./build.sh bench    the benchmark against picows, websockets, aiohttp and websocket-client
#                       (its own virtualenv; writes tests/bench/results/; not part of `test`)
#   ./build.sh fuzz     each Go fuzz target for FUZZTIME (default 10m); `test` runs their corpora
#   ./build.sh lib      only the shared library, into python/steadyws/ (for hacking)
#
# Needs go (>= 1.24, with cgo and a C compiler) and python3 (>= 3.10) with pip and venv.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=build/venv
# The fault-injection proxy of the test suite (installed from the Go module proxy).
TOXIPROXY=github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0

log() { printf '\n==> %s\n' "$*"; }

build_wheel() {
	log "wheel"
	rm -rf dist
	"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir dist .
	ls dist/*.whl
}

go_checks() {
	log "go mod download"
	go mod download
	log "gofmt"
	local unformatted
	unformatted=$(gofmt -l core capi)
	if [ -n "$unformatted" ]; then
		echo "gofmt would change: $unformatted" >&2
		exit 1
	fi
	log "go vet"
	go vet ./...
	log "go test -race"
	go test -race -count=1 ./...
}

make_venv() {
	log "virtualenv $VENV"
	"$PYTHON" -m venv --clear "$VENV"
	"$VENV/bin/python" -m pip install --quiet --upgrade pip
	"$VENV/bin/python" -m pip install --quiet -r tests/requirements.txt
	"$VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps dist/*.whl
}

install_toxiproxy() {
	log "toxiproxy ($TOXIPROXY)"
	GOBIN="$PWD/build/bin" go install "$TOXIPROXY"
	mv -f build/bin/server build/bin/toxiproxy-server
	export STEADYWS_TOXIPROXY="$PWD/build/bin/toxiproxy-server"
}

python_checks() {
	log "ruff"
	"$VENV/bin/ruff" check python tests
	"$VENV/bin/ruff" format --check python tests
	log "mypy --strict"
	"$VENV/bin/python" -m mypy --strict python/steadyws
	log "pytest (against the installed wheel)"
	# From tests/, so that only the installed package can be imported.
	(cd tests && "../$VENV/bin/python" -m pytest -c ../pyproject.toml --rootdir .. -p no:cacheprovider "$@")
}

bench() {
	build_wheel
	log "benchmark virtualenv build/bench-venv"
	"$PYTHON" -m venv --clear build/bench-venv
	build/bench-venv/bin/python -m pip install --quiet -r tests/bench/requirements.txt
	build/bench-venv/bin/python -m pip install --quiet --no-deps dist/*.whl
	log "benchmark"
	build/bench-venv/bin/python tests/bench/run.py "$@"
}

fuzz() {
	local target
	for target in $(go test ./core -list '^Fuzz' | grep '^Fuzz'); do
		log "fuzz $target for ${FUZZTIME:-10m}"
		# -timeout 0: go test's default 10m timeout would end a 10m fuzz run
		# with "context deadline exceeded".
		go test ./core -run '^$' -fuzz "^$target\$" -fuzztime "${FUZZTIME:-10m}" -timeout 0
	done
}

case "${1:-build}" in
build)
	build_wheel
	;;
fuzz)
	fuzz
	;;
bench)
	shift
	bench "$@"
	;;
lib)
	go build -buildmode=c-shared -trimpath -o python/steadyws/libsteadyws.so ./capi
	;;
test)
	shift
	go_checks
	build_wheel
	make_venv
	install_toxiproxy
	python_checks "$@"
	;;
*)
	echo "usage: $0 [build|test|bench|fuzz|lib]" >&2
	exit 2
	;;
esac
