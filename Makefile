# moesim: the two commands of the README.
#   make demo   installs what is missing, builds, runs the default scenario
#   make test   installs what is missing, builds, runs the fast test set (ctest -LE slow)
# Also: make build, make bench (benchmarks, not tests), make test-all (fast + slow), make golden-update,
#   make test-release   Release build (build-release) + fast tests
#   make test-asan      ASan+UBSan build (build-asan, no CUDA) + fast tests
#   make test-clang     clang 14 build (build-clang) + fast tests
#   make fuzz           libFuzzer harnesses (clang, build-fuzz), FUZZ_SECONDS per target (default 60),
#                       FUZZ_SEED (default 0: random; CI fixes it)
# WERROR=ON (CI) makes warnings in moesim's own code errors; off by default for builds from source.
BUILD ?= build
JOBS  ?= 2
WERROR ?= OFF
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo
FUZZ_SECONDS ?= 60
FUZZ_SEED ?= 0
# Left out under ASan: wall-time bounds and the 65,536-GPU scale test (ASan's shadow memory and 3-10x
# slowdown are what they would measure).
ASAN_SKIP ?= routing generation at DeepSeek-V3 scale|65,536-GPU cluster

.PHONY: deps deps-clang configure build demo test test-all bench golden-update clean test-release test-asan test-clang fuzz

deps:
	@bash tools/install-deps.sh

deps-clang:
	@bash tools/install-deps.sh --clang

configure: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DMOESIM_WERROR=$(WERROR) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	./$(BUILD)/moesim run scenarios/demo-h200.yaml

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -LE slow

test-all: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

bench: build
	bash tools/bench.sh $(BUILD)

golden-update: build
	MOESIM_UPDATE_GOLDEN=1 ctest --test-dir $(BUILD) --output-on-failure -R golden

test-release: deps
	@cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DMOESIM_CALIBRATE_CUDA=OFF -DMOESIM_WERROR=$(WERROR) >/dev/null
	@cmake --build build-release -j $(JOBS)
	ctest --test-dir build-release --output-on-failure -j $(JOBS) -LE slow

test-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMOESIM_CALIBRATE_CUDA=OFF -DMOESIM_WERROR=$(WERROR) \
	  -DMOESIM_SANITIZE=address,undefined >/dev/null
	@cmake --build build-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir build-asan --output-on-failure -j $(JOBS) -LE slow -E "$(ASAN_SKIP)"

test-clang: deps-clang
	@cmake -S . -B build-clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DMOESIM_CALIBRATE_CUDA=OFF -DMOESIM_WERROR=$(WERROR) >/dev/null
	@cmake --build build-clang -j $(JOBS)
	ctest --test-dir build-clang --output-on-failure -j $(JOBS) -LE slow

fuzz: deps-clang
	@cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DMOESIM_CALIBRATE_CUDA=OFF -DMOESIM_FUZZ=ON -DMOESIM_WERROR=$(WERROR) >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_scenario fuzz_profile fuzz_trace fuzz_raw
	bash tools/fuzz.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_SEED)

clean:
	rm -rf $(BUILD) build-release build-asan build-fuzz
