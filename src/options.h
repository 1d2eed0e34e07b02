// Table-driven command-line options, shared by both programs: strict number
// parsing (whole string, range checked, no NaN or inf), --help generated from
// the table with each default, and a record of which options were given.
#ifndef OPTIONS_H
#define OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "common.h"

typedef enum { OPT_INT, OPT_FLOAT, OPT_STR, OPT_FLAG } OptType;

typedef struct {
    const char *name; // "--dim"
    OptType type;
    size_t offset;    // of the value in the settings struct: int64_t, double, const char *, int
    double lo, hi;    // range of numbers
    const char *help;
} Option;

// Parses argv[1..] into the struct at `base` (pre-filled with defaults).
// An option's value is the next argument, or for a long option (--name) also
// --name=value in one; a flag (OPT_FLAG) refuses a value. Arguments not
// starting with '-' (and "-" alone) go to positional[] (at most max_pos).
// given[i] is set to 1 when option i appears. Returns 0, 1 for --help, or -1
// with a one-line message in err.
int options_parse(const Option *opts, int n, void *base, unsigned char *given,
                  int argc, char **argv, const char **positional, int max_pos, int *n_pos,
                  Error *err);
// One line per option with its current (default) value.
void options_usage(FILE *f, const Option *opts, int n, const void *base);
// Checks every numeric option's value in `base` against its range (for
// settings read back from a file). Names the option in the error.
int options_check_ranges(const Option *opts, int n, const void *base, Error *err);
// Copies option o's value from src to dst (both settings structs).
void option_copy(const Option *o, void *dst, const void *src);
// The option's value as text (for messages and comparisons).
void option_format(const Option *o, const void *base, char *buf, size_t cap);
// Whether option o has the same value (the same bytes) in a and b.
int option_same(const Option *o, const void *a, const void *b);
// The option as the command line would give it, exactly: "--lr 0.001" (the
// shortest number that reads back as the value; with float32, as its float32
// rounding), "--norm dyt" (a string quoted for the shell when it needs it),
// "--tie-embeddings". Returns 0, writing nothing, for an off flag or an unset string.
int option_flag_text(const Option *o, const void *base, int float32, char *buf, size_t cap);

#endif
