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
# `make MPI=1`: the trainer runs data-parallel under mpirun (src/dist.c with
# -DUSE_MPI, built by mpicc). Its objects live in build-mpi/, so MPI and plain
# objects never mix; the programs are relinked whenever the flavour changes.
ifeq ($(MPI),1)
MPICC ?= mpicc
CC := $(MPICC)
CFLAGS += -DUSE_MPI
BUILD = build-mpi
FLAVOR = mpi
else
BUILD = build
FLAVOR = plain
endif
LDLIBS = -L$(BLAS_LIB) -Wl,-rpath,$(BLAS_LIB) -lopenblas -lm
# oneDNN (the second matmul backend, src/matmul_onednn.c) when its header is
# there; `make NO_DNNL=1` builds without it (objects in build-nodnnl/, or
# build-mpi-nodnnl/), as on a machine that lacks it: --matmul onednn is refused.
# The sanitizer, valgrind and fuzz builds below have it too (DNNL_CFLAGS).
DNNL_H ?= /usr/include/oneapi/dnnl/dnnl.h
DNNL_CFLAGS =
ifeq ($(NO_DNNL),1)
BUILD := $(BUILD)-nodnnl
FLAVOR := $(FLAVOR)-nodnnl
else ifneq ($(wildcard $(DNNL_H)),)
DNNL_CFLAGS = -DHAVE_DNNL
CFLAGS += $(DNNL_CFLAGS)
LDLIBS += -ldnnl
endif
$(shell mkdir -p build && [ "$$(cat build/flavor 2>/dev/null)" = $(FLAVOR) ] || echo $(FLAVOR) >build/flavor)
# The build's name (src/version.h): the project's version and the checkout's
# commit, -dirty with uncommitted changes. build/version.h is rewritten only
# when the name changes, so that then only version.o is rebuilt.
VERSION = 0.9
BUILD_NAME := $(VERSION)-$(shell git describe --always --dirty 2>/dev/null || echo unknown)
$(shell echo '#define BUILD_NAME "$(BUILD_NAME)"' | cmp -s - build/version.h || \
        echo '#define BUILD_NAME "$(BUILD_NAME)"' >build/version.h)

LIB_SRC = dyt.c src/common.c src/rng.c src/bf16.c src/matmul.c src/matmul_openblas.c src/matmul_onednn.c src/layers.c src/norms.c src/model.c src/modelio.c \
          src/optim.c src/data.c src/sampler.c src/options.c src/sptok.c src/llama2c.c src/bpe.c \
          src/threads.c src/files.c src/settings.c src/version.c src/export.c src/export_gguf.c src/export_hf.c \
          src/export_llama2c.c src/export_model.c src/progress.c src/rundir.c src/runlog.c
LIB_OBJ = $(LIB_SRC:%.c=build/%.o)
# the trainer alone talks to other processes
TRAIN_OBJ = $(BUILD)/src/dist.o

.PHONY: all test test-mpi demo bench figures help-docs clean fuzz asan ubsan valgrind blas-check
all: train_llama infer_llama tokenize export_llama

# Before the first compile: without OpenBLAS's header, one line says what to install
# (instead of the compiler's "cblas.h: No such file or directory"). An order-only
# prerequisite of every object, checked when something is compiled.
blas-check:
	$(if $(wildcard $(BLAS_INC)/cblas.h),,$(error OpenBLAS is missing ($(BLAS_INC)/cblas.h): \
	run scripts/setup.sh as root, or: apt-get install -y libopenblas-openmp-dev))

# `make V=1` prints the full commands
ifneq ($(V),1)
Q = @
endif

$(BUILD)/%.o: %.c | blas-check
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

train_llama: $(BUILD)/train_llama.o $(TRAIN_OBJ) $(LIB_OBJ:build/%=$(BUILD)/%) build/flavor
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $(filter %.o,$^) -o $@ $(LDLIBS)

infer_llama tokenize export_llama: %: $(BUILD)/%.o $(LIB_OBJ:build/%=$(BUILD)/%) build/flavor
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $(filter %.o,$^) -o $@ $(LDLIBS)

# The trainer linked inside its flavour's folder, leaving ./train_llama as it is:
# test/run_tests.sh checks the build without oneDNN with
# `make NO_DNNL=1 build-nodnnl/train_llama` (its objects only, not every program).
ifneq ($(BUILD),build)
$(BUILD)/train_llama: $(BUILD)/train_llama.o $(TRAIN_OBJ) $(LIB_OBJ:build/%=$(BUILD)/%)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)
endif

build/test_core: build/test/test_core.o $(LIB_OBJ)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

build/export_ref: build/test/export_ref.o $(LIB_OBJ)
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

# The benchmark suite (scripts/bench.py): prints the table, writes runs/bench/bench.md
# and runs/bench/bench.csv (`make figures` copies them to docs/). BENCH_QUICK=1 runs
# fewer steps (a smoke run, not numbers).
bench: build/benchmark build/alloc_count.so
	BENCH_CFLAGS="$(CFLAGS)" /usr/bin/python3 scripts/bench.py

# set-up first (packages, data), then build, then every test
test:
	scripts/setup.sh
	-scripts/setup_node.sh
	data/get_data.sh
	$(MAKE) --no-print-directory all build/test_core build/export_ref
	test/run_tests.sh

# data-parallel tests: 2 processes under mpirun (test/run_mpi_tests.sh);
# leaves the MPI build of the programs in place
test-mpi:
	scripts/setup.sh openmpi-bin libopenmpi-dev
	data/get_data.sh
	$(MAKE) --no-print-directory MPI=1 all
	test/run_mpi_tests.sh

# make demo writes only under runs/ (a fresh clone stays clean). make figures updates
# what the README shows: the demo's plots and summary (docs/demo_*; finished runs are
# reused) and the last `make bench`'s tables (docs/bench.*).
demo:
	scripts/demo.sh

figures:
	scripts/demo.sh --update-docs
	@if [ -f runs/bench/bench.md ]; then cp runs/bench/bench.md runs/bench/bench.csv docs/ && \
	    echo "figures: docs/bench.md, docs/bench.csv updated from runs/bench/"; \
	else echo "figures: no runs/bench/bench.md (run make bench first); docs/bench.* left as they are"; fi

# docs/help/PROGRAM.txt: each program's --help, which docs/usage.md links instead of
# pasting it. `make test` checks that they equal the built programs' output, so a
# changed flag or help line fails the suite until `make help-docs` is run.
HELP_PROGS = train_llama infer_llama export_llama tokenize
help-docs: $(HELP_PROGS)
	@mkdir -p docs/help
	$(Q)for p in $(HELP_PROGS); do ./$$p --help >docs/help/$$p.txt.tmp && \
	    mv docs/help/$$p.txt.tmp docs/help/$$p.txt || exit 1; done
	@echo "help-docs: docs/help/{$$(echo $(HELP_PROGS) | tr ' ' ,)}.txt written from --help"

# Fuzzing (fuzz/): libFuzzer targets for the model/checkpoint loader, the
# llama2.c tokenizer loader, the BPE tokenizer loader and the token cache loader,
# built with clang, ASan and UBSan. `make fuzz FUZZ_SECONDS=60` runs each
# target that long and fails on any crash. The library is built without
# -fopenmp: the loaders have no parallel code, the pragmas are then ignored,
# and one OpenMP runtime (libgomp, which OpenBLAS's OpenMP build already
# loads) serves the omp_* calls, instead of clang's libomp beside it.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_CFLAGS = -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -std=c11 \
              -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wno-unknown-pragmas -I$(BLAS_INC) -MMD -MP $(DNNL_CFLAGS)
ifeq ($(WERROR),1)
FUZZ_CFLAGS += -Werror
endif
FUZZ_OBJ = $(LIB_SRC:%.c=build/fuzzobj/%.o)
FUZZ_BIN = build/fuzz/fuzz_model build/fuzz/fuzz_tokenizer build/fuzz/fuzz_bpe build/fuzz/fuzz_tokcache \
           build/fuzz/fuzz_record build/fuzz/fuzz_config
.SECONDARY: $(FUZZ_OBJ) $(FUZZ_BIN:build/fuzz/%=build/fuzzobj/fuzz/%.o)

build/fuzzobj/%.o: %.c | blas-check
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

# Sanitizers: `make asan` (AddressSanitizer + LeakSanitizer) and `make ubsan`
# (UndefinedBehaviorSanitizer) build the programs and test_core into
# build/asan, build/ubsan and run the whole test suite against them (BIN=...).
# OpenMP stays on: ASan and UBSan work with libgomp (TSan would not). A
# sanitizer report exits 86 or 87, which no test expects, and prints many
# lines, which the bad-input tests refuse, so any finding fails the suite.
SAN_CFLAGS = -O1 -g -fno-omit-frame-pointer -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra \
             -fopenmp -I$(BLAS_INC) -MMD -MP $(DNNL_CFLAGS)
ifeq ($(WERROR),1)
SAN_CFLAGS += -Werror
endif
SAN_asan = -fsanitize=address
SAN_ubsan = -fsanitize=undefined -fno-sanitize-recover=undefined -fsanitize=float-cast-overflow
SAN_valgrind =
SAN_OBJ = $(LIB_SRC:%.c=build/$(1)/obj/%.o)
SAN_ENV = ASAN_OPTIONS=exitcode=86:detect_leaks=1:abort_on_error=0 \
          UBSAN_OPTIONS=exitcode=87:print_stacktrace=1:halt_on_error=1

define san_rules
build/$(1)/obj/%.o: %.c | blas-check
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  CC      $$< ($(1))")
	$$(Q)$$(CC) $$(SAN_CFLAGS) $$(SAN_$(1)) -c $$< -o $$@
build/$(1)/train_llama: build/$(1)/obj/src/dist.o
build/$(1)/train_llama build/$(1)/infer_llama build/$(1)/tokenize build/$(1)/export_llama: build/$(1)/%: build/$(1)/obj/%.o \
        $(call SAN_OBJ,$(1))
	@$$(if $$(Q),echo "  LINK    $$@")
	$$(Q)$$(CC) $$(SAN_CFLAGS) $$(SAN_$(1)) $$^ -o $$@ $$(LDLIBS)
build/$(1)/test_core: build/$(1)/obj/test/test_core.o $(call SAN_OBJ,$(1))
	@$$(if $$(Q),echo "  LINK    $$@")
	$$(Q)$$(CC) $$(SAN_CFLAGS) $$(SAN_$(1)) $$^ -o $$@ $$(LDLIBS)
-include $(patsubst %.o,%.d,$(call SAN_OBJ,$(1))) build/$(1)/obj/train_llama.d \
         build/$(1)/obj/infer_llama.d build/$(1)/obj/tokenize.d build/$(1)/obj/export_llama.d build/$(1)/obj/test/test_core.d \
         build/$(1)/obj/src/dist.d
endef
$(eval $(call san_rules,asan))
$(eval $(call san_rules,ubsan))
$(eval $(call san_rules,valgrind))

asan ubsan: %: build/%/train_llama build/%/infer_llama build/%/tokenize build/%/export_llama build/%/test_core \
        build/export_ref
	scripts/setup.sh
	-scripts/setup_node.sh
	data/get_data.sh
	$(SAN_ENV) BIN=build/$@ test/run_tests.sh

# valgrind memcheck of a few training steps, a resume, a generation, an
# evaluation and a rejected file: no errors, no leaks. Built without
# -march=native (valgrind 3.19 has no AVX-512) and without sanitizers.
valgrind: build/valgrind/train_llama build/valgrind/infer_llama
	scripts/setup.sh valgrind
	data/get_data.sh
	test/valgrind.sh build/valgrind

clean:
	rm -rf build build-mpi build-nodnnl build-mpi-nodnnl train_llama infer_llama tokenize export_llama

-include $(LIB_OBJ:build/%.o=$(BUILD)/%.d) $(BUILD)/train_llama.d $(BUILD)/infer_llama.d $(BUILD)/tokenize.d $(BUILD)/export_llama.d \
         $(BUILD)/src/dist.d build/test/test_core.d build/test/export_ref.d build/bench/bench.d
-include $(FUZZ_OBJ:.o=.d) $(FUZZ_BIN:build/fuzz/%=build/fuzzobj/fuzz/%.d) build/fuzz/make_seeds.d
