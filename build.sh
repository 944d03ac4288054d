#!/usr/bin/env bash
# steadyws build and checks.
#
#   ./build.sh          the wheel for this machine, dist/steadyws-<ver>-py3-none-manylinux_2_17_<arch>.whl
#                       (the library built with zig cc for glibc 2.17, the tag verified by auditwheel)
#   ./build.sh wheels   both manylinux_2_17 wheels, x86_64 and aarch64, into dist/; then the arm64
#                       build's tests under qemu user emulation (see "Platforms" in the README)
#   ./build.sh test     everything CI runs: gofmt, go vet (linux, darwin, windows), go test -race,
#                       the wheel, a fresh virtualenv with the pinned test dependencies, toxiproxy,
#                       ruff, mypy --strict, the pytest suite against the installed wheel, and
#                       the smoke test on every other CPython 3.10-3.13 the machine has
#   ./build.sh bench    the benchmark against picows, websockets, aiohttp and websocket-client
#                       (its own virtualenv; writes tests/bench/results/; not part of `test`)
#   ./build.sh fuzz     each Go fuzz target for FUZZTIME (default 10m); `test` runs their corpora
#   ./build.sh lib      only the shared library, into python/steadyws/ (for hacking)
#
# Needs go (>= the version in go.mod, with cgo and a C compiler) and python3 (>= 3.10) with pip
# and venv; the wheel builds install their own zig and auditwheel (python/requirements-wheels.txt).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=build/venv
# The fault-injection proxy of the test suite (installed from the Go module proxy).
TOXIPROXY=github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0

log() { printf '\n==> %s\n' "$*"; }

WHEEL_TOOLS=build/wheel-venv
GLIBC=2.17 # the manylinux2014 baseline

wheel_tools() {
	if [ ! -x "$WHEEL_TOOLS/bin/auditwheel" ]; then
		log "wheel tools ($WHEEL_TOOLS: zig, auditwheel)"
		"$PYTHON" -m venv --clear "$WHEEL_TOOLS"
		"$WHEEL_TOOLS/bin/python" -m pip install --quiet -r python/requirements-wheels.txt
	fi
}

# zig_cc TARGET: the path of a C compiler command for cgo: zig cc for TARGET.
zig_cc() {
	local cc="$PWD/build/cc/zcc-$1"
	wheel_tools >&2
	mkdir -p build/cc
	printf '#!/bin/sh\nexec "%s" -m ziglang cc -target %s "$@"\n' "$PWD/$WHEEL_TOOLS/bin/python" "$1" >"$cc"
	chmod +x "$cc"
	echo "$cc"
}

# arch_of GOARCH: the machine name of wheel tags and zig targets.
arch_of() {
	case "$1" in
	amd64) echo x86_64 ;;
	arm64) echo aarch64 ;;
	*) echo "unsupported GOARCH $1" >&2 && exit 2 ;;
	esac
}

# wheel_for GOARCH: dist/steadyws-*-manylinux_2_17_<arch>.whl, built with zig cc for
# glibc $GLIBC and tagged by auditwheel repair, which refuses a library that needs more.
wheel_for() {
	local goarch=$1 arch cc
	arch=$(arch_of "$goarch")
	cc=$(zig_cc "$arch-linux-gnu.$GLIBC")
	log "wheel for linux $arch (zig cc, glibc $GLIBC)"
	rm -rf "build/wheel-$arch"
	STEADYWS_GOARCH=$goarch CC=$cc "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "build/wheel-$arch" .
	auditwheel_for "$arch" repair --only-plat --plat "manylinux_${GLIBC/./_}_$arch" --wheel-dir dist \
		"build/wheel-$arch"/*.whl
	auditwheel_for "$arch" show dist/*"manylinux_${GLIBC/./_}_$arch"*.whl
}

# auditwheel_for ARCH ARGS: auditwheel, run as on an ARCH machine. Its checks and its repair
# work from the wheel's own architecture, but its command line offers only the host's platform
# tags (pypa/auditwheel#244, #512), so it is told the machine it runs on is ARCH.
auditwheel_for() {
	local arch=$1
	shift
	PATH="$PWD/$WHEEL_TOOLS/bin:$PATH" "$WHEEL_TOOLS/bin/python" -c '
import platform, sys
machine = sys.argv.pop(1)
platform.machine = lambda: machine
from auditwheel.main import main
sys.exit(main())' "$arch" "$@"
}

build_wheel() {
	rm -rf dist
	wheel_for "$(go env GOARCH)"
	ls dist/*.whl
}

ARM64_ROOT=build/arm64-root # Debian arm64, unpacked: the sysroot of qemu and its CPython
DEBIAN=bookworm

# debian_tool CMD PACKAGE: CMD, installed from Debian's packages if missing.
debian_tool() {
	command -v "$1" >/dev/null && return
	log "apt-get install $2"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null
}

# arm64_root: a Debian arm64 tree with python3, unpacked without running anything in it
# (debootstrap's first stage, then the packages it fetched) -- nothing arm64 is installed
# on the machine itself.
arm64_root() {
	[ -x "$ARM64_ROOT/usr/bin/python3" ] && return
	debian_tool debootstrap debootstrap
	log "Debian $DEBIAN arm64 tree in $ARM64_ROOT (debootstrap --foreign)"
	rm -rf "$ARM64_ROOT"
	debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 "$DEBIAN" "$ARM64_ROOT" \
		http://deb.debian.org/debian >build/arm64-debootstrap.log
	local deb
	for deb in "$ARM64_ROOT"/var/cache/apt/archives/*.deb; do
		dpkg-deb -x "$deb" "$ARM64_ROOT"
	done
}

# arm64_tests: the aarch64 build under qemu user emulation: the engine's Go tests (pure Go),
# the C API's tests (cgo, linked by zig against glibc 2.17, run on the arm64 tree's glibc),
# and the smoke test of the aarch64 wheel on the tree's CPython.
arm64_tests() {
	debian_tool qemu-aarch64-static qemu-user-static
	local qemu=(qemu-aarch64-static -L "$PWD/$ARM64_ROOT")
	mkdir -p build/arm64
	log "go test ./core for linux/arm64, under qemu-aarch64-static"
	GOARCH=arm64 CGO_ENABLED=0 go test -c -o build/arm64/core.test ./core
	(cd core && qemu-aarch64-static ../build/arm64/core.test -test.count=1)
	arm64_root
	log "go test ./capi for linux/arm64 (cgo), under qemu-aarch64-static"
	GOARCH=arm64 CGO_ENABLED=1 CC=$(zig_cc "aarch64-linux-gnu.$GLIBC") go test -c -o build/arm64/capi.test ./capi
	(cd capi && "${qemu[@]}" ../build/arm64/capi.test -test.count=1)
	log "smoke test of the aarch64 wheel, on Debian's arm64 CPython under qemu"
	rm -rf build/arm64/site
	"$PYTHON" -m zipfile -e dist/*_aarch64.whl build/arm64/site
	(cd tests && PYTHONPATH="$PWD/../build/arm64/site" "${qemu[@]}" "$PWD/../$ARM64_ROOT/usr/bin/python3" test_smoke.py)
}

wheels() {
	rm -rf dist
	wheel_for amd64
	wheel_for arm64
	arm64_tests
	log "wheels"
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
	log "go vet (linux; darwin with cgo, zig as its C compiler; windows: the engine)"
	go vet ./...
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=1 CC=$(zig_cc aarch64-macos) go vet ./...
	rm -f -- -.o # zig leaves the output of cgo's compiler probe ("-o -") as a file
	GOOS=windows go vet ./core/...
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

# The CPython versions steadyws supports; the suite runs on $PYTHON, the smoke test on the others.
PYTHONS="3.10 3.11 3.12 3.13"

# python_for X.Y: a working interpreter of CPython X.Y on PATH or in pyenv's versions, or nothing.
python_for() {
	local candidate
	for candidate in "$(command -v "python$1" || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/"python$1"; do
		if [ -x "$candidate" ] && "$candidate" -c 'import sys, venv' 2>/dev/null; then
			echo "$candidate"
			return
		fi
	done
}

# version_matrix: the smoke test (tests/test_smoke.py) against the installed wheel on every
# other supported CPython, each in its own virtualenv; a version the machine lacks is reported
# as skipped, and the summary line says which ran.
version_matrix() {
	local main version py ran="" skipped=""
	main=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
	for version in $PYTHONS; do
		[ "$version" = "$main" ] && continue
		py=$(python_for "$version")
		if [ -z "$py" ]; then
			log "CPython $version: not installed -- SKIPPED"
			skipped="$skipped $version"
			continue
		fi
		log "smoke test on CPython $version ($py)"
		"$py" -m venv --clear "build/venv-$version"
		"build/venv-$version/bin/python" -m pip install --quiet $(grep -E '^pytest(-timeout)?==' tests/requirements.txt)
		"build/venv-$version/bin/python" -m pip install --quiet --no-deps dist/*.whl
		(cd tests && "../build/venv-$version/bin/python" -m pytest -c ../pyproject.toml --rootdir .. -p no:cacheprovider --noconftest -q test_smoke.py)
		ran="$ran $version"
	done
	log "version matrix: full suite on CPython $main; smoke test passed on:${ran:- none}; skipped (not installed):${skipped:- none}"
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
wheels)
	wheels
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
	version_matrix
	;;
*)
	echo "usage: $0 [build|test|wheels|bench|fuzz|lib]" >&2
	exit 2
	;;
esac
