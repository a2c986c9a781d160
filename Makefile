# moesim: the two commands of the README.
#   make demo   installs what is missing, builds, runs the default scenario
#   make test   installs what is missing, builds, runs the fast test set (ctest -LE slow)
# Also: make build, make bench (benchmarks, not tests), make test-all (fast + slow), make golden-update.
BUILD ?= build
JOBS  ?= 2
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: deps configure build demo test test-all bench golden-update clean

deps:
	@bash tools/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null

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

clean:
	rm -rf $(BUILD)
