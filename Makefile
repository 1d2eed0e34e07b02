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

.PHONY: all test demo bench clean
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

# set-up first (packages, data), then build, then every test
test:
	scripts/setup.sh
	data/get_data.sh
	$(MAKE) --no-print-directory all build/test_core
	test/run_tests.sh

demo:
	scripts/demo.sh

clean:
	rm -rf build train_llama infer_llama

-include $(LIB_OBJ:.o=.d) build/train_llama.d build/infer_llama.d build/test/test_core.d
