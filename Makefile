# Builds train_llama and infer_llama against OpenBLAS's OpenMP build (one
# thread pool shared by BLAS and our loops). `make WERROR=1` as CI does.
CC ?= cc
BLAS_INC ?= /usr/include/x86_64-linux-gnu/openblas-openmp
BLAS_LIB ?= /usr/lib/x86_64-linux-gnu/openblas-openmp
OPT ?= -O3 -march=native
# ISO C mode keeps -ffp-contract=off: no FMA contraction, so results are
# reproducible and close to the float64 reference.
CFLAGS = $(OPT) -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -fopenmp -I$(BLAS_INC) -MMD -MP
ifeq ($(WERROR),1)
CFLAGS += -Werror
endif
LDLIBS = -L$(BLAS_LIB) -Wl,-rpath,$(BLAS_LIB) -lopenblas -lm

LIB_SRC = dyt.c src/common.c src/rng.c src/layers.c src/model.c src/modelio.c \
          src/optim.c src/data.c src/sampler.c src/options.c src/sptok.c src/llama2c.c
LIB_OBJ = $(LIB_SRC:%.c=build/%.o)

.PHONY: all test demo bench clean fuzz
all: train_llama infer_llama

# `make V=1` prints the full commands
ifneq ($(V),1)
Q = @
endif

build/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

train_llama infer_llama: %: build/%.o $(LIB_OBJ)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

build/test_core: build/test/test_core.o $(LIB_OBJ)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

build/benchmark: build/bench/bench.o $(LIB_OBJ)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# LD_PRELOAD allocation counter: bench shows a training step allocates nothing
build/alloc_count.so: bench/alloc_count.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) -O2 -std=c11 -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -fPIC -shared $< -o $@ -ldl

# The benchmark suite (scripts/bench.py): prints the table, writes docs/bench.md
# and docs/bench.csv. BENCH_QUICK=1 runs fewer steps (a smoke run, not numbers).
bench: build/benchmark build/alloc_count.so
	BENCH_CFLAGS="$(CFLAGS)" /usr/bin/python3 scripts/bench.py

# set-up first (packages, data), then build, then every test
test:
	scripts/setup.sh
	data/get_data.sh
	$(MAKE) --no-print-directory all build/test_core
	test/run_tests.sh

demo:
	scripts/demo.sh

# Fuzzing (fuzz/): libFuzzer targets for the model/checkpoint loader and the
# llama2.c tokenizer loader (no token cache exists yet, so no target for it),
# built with clang, ASan and UBSan. `make fuzz FUZZ_SECONDS=60` runs each
# target that long and fails on any crash. The library is built without
# -fopenmp: the loaders have no parallel code, the pragmas are then ignored,
# and one OpenMP runtime (libgomp, which OpenBLAS's OpenMP build already
# loads) serves the omp_* calls, instead of clang's libomp beside it.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_CFLAGS = -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -std=c11 \
              -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wno-unknown-pragmas -I$(BLAS_INC) -MMD -MP
ifeq ($(WERROR),1)
FUZZ_CFLAGS += -Werror
endif
FUZZ_OBJ = $(LIB_SRC:%.c=build/fuzzobj/%.o)
FUZZ_BIN = build/fuzz/fuzz_model build/fuzz/fuzz_tokenizer
.SECONDARY: $(FUZZ_OBJ) $(FUZZ_BIN:build/fuzz/%=build/fuzzobj/fuzz/%.o)

build/fuzzobj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

build/fuzz/fuzz_%: build/fuzzobj/fuzz/fuzz_%.o $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ -o $@ $(LDLIBS) -lgomp

build/make_seeds: build/fuzz/make_seeds.o $(LIB_OBJ)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

fuzz: $(FUZZ_BIN) build/make_seeds
	fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf build train_llama infer_llama

-include $(LIB_OBJ:.o=.d) build/train_llama.d build/infer_llama.d build/test/test_core.d build/bench/bench.d
-include $(FUZZ_OBJ:.o=.d) build/fuzzobj/fuzz/fuzz_model.d build/fuzzobj/fuzz/fuzz_tokenizer.d build/fuzz/make_seeds.d
