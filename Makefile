# plexburst: the two set-up commands of the README.
#   make test   installs missing dependencies, builds, and runs every test (ctest)
#   make demo   installs missing dependencies, builds, and runs the demo on the embedded default
#   make package  builds the Debian package (CPack): $(BUILD)/plexburst_<version>-1_<arch>.deb,
#               installed with `apt install ./plexburst_*.deb`
#   make lintian  checks that package with lintian
# Other targets: build, bench, fuzz (scripts/fuzz), format, format-check, clean.

BUILD ?= build
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps build test demo bench fuzz package lintian format format-check clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@scripts/demo $(BUILD)

bench: build
	@bench/run $(BUILD)

fuzz:
	@scripts/fuzz

# only what the package holds is built (the binary, its man page and completions), not the tests
package: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS) --target pb_cli pb_package_files
	cd $(BUILD) && cpack -G DEB

lintian: package
	lintian --fail-on error,warning $(BUILD)/plexburst_*.deb

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
